// Command tiller is the sandbox's stand-in for the Tiller image of Helm 2's
// legacy mode: it is NOT Tiller. It accepts connections on Tiller's gRPC port
// (and closes them at once) and answers Tiller's probes, so a Deployment that
// names the Tiller image becomes Ready on the sandbox's real node.
package main

import (
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
)

const (
	grpcAddress  = ":44134"
	probeAddress = ":44135"
)

func main() {
	listener, err := net.Listen("tcp", grpcAddress)
	if err != nil {
		log.Fatalf("listen %s: %v", grpcAddress, err)
	}
	go acceptAndClose(listener)

	probes := http.NewServeMux()
	for _, path := range []string{"/readiness", "/liveness"} {
		probes.HandleFunc(path, func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(http.StatusOK)
		})
	}
	go func() {
		log.Fatal(http.ListenAndServe(probeAddress, probes))
	}()

	log.Printf("dask-gke sandbox stand-in for Tiller (not Tiller): %s accepts and closes, %s answers probes", grpcAddress, probeAddress)
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	<-stop
}

// acceptAndClose takes every connection and closes it: nothing speaks gRPC here.
func acceptAndClose(listener net.Listener) {
	for {
		connection, err := listener.Accept()
		if err != nil {
			return
		}
		connection.Close()
	}
}
