// gcs-emulator: Google Cloud Storage for the tests, on loopback.
//
// fake-gcs-server (github.com/fsouza/fake-gcs-server, used as a library) keeps the buckets and
// objects on disk and serves the JSON API. What it lacks, and what object_store's GCS client
// speaks, is the XML API: path-style object PUT (with x-goog-meta-* metadata, generation
// preconditions and x-goog-copy-source), multipart uploads (POST ?uploads, PUT ?partNumber,
// POST ?uploadId, DELETE ?uploadId), GET and HEAD with Range and conditional headers, and the
// bucket listing (list-type=2). This program adds those routes in front of it.
//
// Usage: gcs-emulator -listen 127.0.0.1:0 -root DIR -bucket NAME [-bucket NAME...]
// The first line of stdout is `gcs-emulator listening on http://ADDR`.
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/fsouza/fake-gcs-server/fakestorage"
)

type buckets []string

func (b *buckets) String() string     { return strings.Join(*b, ",") }
func (b *buckets) Set(v string) error { *b = append(*b, v); return nil }

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on")
	root := flag.String("root", "", "folder for the objects and the multipart uploads in progress")
	var names buckets
	flag.Var(&names, "bucket", "a bucket to create at start (repeatable)")
	readRate := flag.Int64("read-rate", 0, "bytes per second each object download is held to (0: no limit), as a slow link would")
	flag.Parse()
	if *root == "" {
		log.Fatal("-root is required")
	}

	listener, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatalf("listening on %s: %v", *listen, err)
	}
	addr := listener.Addr().String()
	host, port, _ := net.SplitHostPort(addr)
	var portNumber uint16
	fmt.Sscanf(port, "%d", &portNumber)

	store, err := fakestorage.NewServerWithOptions(fakestorage.Options{
		StorageRoot: filepath.Join(*root, "objects"),
		Scheme:      "http",
		Host:        host,
		Port:        portNumber,
		NoListener:  true,
		PublicHost:  addr,
		ExternalURL: "http://" + addr,
		Writer:      os.Stderr,
	})
	if err != nil {
		log.Fatalf("starting fake-gcs-server: %v", err)
	}
	for _, name := range names {
		store.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: name})
	}
	uploads := filepath.Join(*root, "uploads")
	if err := os.MkdirAll(uploads, 0o755); err != nil {
		log.Fatalf("creating %s: %v", uploads, err)
	}

	handler := &xmlAPI{store: store, uploads: uploads, json: store.HTTPHandler(), readRate: *readRate}
	server := &http.Server{Handler: handler}
	fmt.Printf("gcs-emulator listening on http://%s\n", addr)
	os.Stdout.Sync()

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-stop
		server.Close()
	}()
	if err := server.Serve(listener); err != nil && err != http.ErrServerClosed {
		log.Fatalf("serving: %v", err)
	}
}
