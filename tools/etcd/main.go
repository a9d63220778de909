// Command etcd is the etcd server, built from go.etcd.io/etcd/server/v3 so that it comes from the
// Go module proxy like every other tool (Debian's etcd is too old for current apiservers).
// etcd's own main package lives in the go.etcd.io/etcd/v3 root module, which only builds inside
// its repository; etcdmain.Main is the function that package calls.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
