/* The pod sandbox ("pause") container of the test node: it holds the pod's namespaces and does
 * nothing else. Nothing can be pulled on the test machines, so it is built here (gcc -static) and
 * packed onto scratch (tools/pause/Containerfile). As PID 1 it gets no default signal handlers, so
 * it exits on SIGTERM and SIGINT itself, and reaps any zombie handed to it. */
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static void quit(int sig) { (void)sig; _exit(0); }

static void reap(int sig) {
  (void)sig;
  while (waitpid(-1, NULL, WNOHANG) > 0) {
  }
}

int main(void) {
  signal(SIGTERM, quit);
  signal(SIGINT, quit);
  signal(SIGCHLD, reap);
  for (;;) pause();
  return 0;
}
