// lumber-receiver: a Lumberjack v2 receiver for pybeat's Logstash output tests.
//
// It is go-lumber's own v2 server (the implementation Beats is tested against) plus a few
// lines of glue: every received event is written, exactly as the client sent its JSON, as one
// line of an NDJSON file, then the batch is ACKed. Options add TLS (with optional client
// certificate checking) and a per-batch ACK delay for backpressure tests.
//
// On start it prints "LISTENING <host:port>" on stdout, so a test can bind port 0.
// On SIGTERM/SIGINT it closes the server and prints its counters on stderr.
package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	client "github.com/elastic/go-lumber/client/v2"
	"github.com/elastic/go-lumber/lj"
	v2 "github.com/elastic/go-lumber/server/v2"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	out := flag.String("out", "", "NDJSON file the events are appended to (required)")
	ackDelay := flag.Duration("ack-delay", 0, "wait this long before ACKing each batch")
	keepalive := flag.Duration("keepalive", 3*time.Second, "interval of keep-alive ACKs (seq 0) while a batch waits")
	timeout := flag.Duration("timeout", 30*time.Second, "network read/write timeout")
	certFile := flag.String("tls-cert", "", "server certificate (PEM); enables TLS")
	keyFile := flag.String("tls-key", "", "server key (PEM)")
	clientCA := flag.String("tls-client-ca", "", "require client certificates signed by this CA (PEM)")
	minVersion := flag.String("tls-min-version", "1.2", "lowest TLS version accepted: 1.2 or 1.3")
	encode := flag.Bool("encode", false, "instead of serving: read JSON lines on stdin and write the bytes "+
		"go-lumber's v2 client sends for them as one window (uncompressed) to stdout")
	flag.Parse()
	if *encode {
		if err := encodeWindow(os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "encode:", err)
			os.Exit(1)
		}
		return
	}
	if *out == "" {
		fmt.Fprintln(os.Stderr, "-out is required")
		os.Exit(2)
	}

	fh, err := os.OpenFile(*out, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		fmt.Fprintln(os.Stderr, "open output:", err)
		os.Exit(1)
	}
	w := bufio.NewWriterSize(fh, 1<<20)

	opts := []v2.Option{
		v2.Keepalive(*keepalive),
		v2.Timeout(*timeout),
		// Keep the raw JSON bytes: the test compares what arrived with what was sent.
		v2.JSONDecoder(func(b []byte, v interface{}) error {
			if !json.Valid(b) {
				return fmt.Errorf("event is not valid JSON: %q", b)
			}
			raw := make([]byte, len(b))
			copy(raw, b)
			*(v.(*interface{})) = raw
			return nil
		}),
	}
	var tlsConfig *tls.Config
	if *certFile != "" {
		cert, err := tls.LoadX509KeyPair(*certFile, *keyFile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "load certificate:", err)
			os.Exit(1)
		}
		cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		if *minVersion == "1.3" {
			cfg.MinVersion = tls.VersionTLS13
		}
		if *clientCA != "" {
			pem, err := os.ReadFile(*clientCA)
			if err != nil {
				fmt.Fprintln(os.Stderr, "read client CA:", err)
				os.Exit(1)
			}
			pool := x509.NewCertPool()
			pool.AppendCertsFromPEM(pem)
			cfg.ClientCAs = pool
			cfg.ClientAuth = tls.RequireAndVerifyClientCert
		}
		tlsConfig = cfg
	}

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "listen:", err)
		os.Exit(1)
	}
	if tlsConfig != nil {
		// go-lumber applies its TLS option only in ListenAndServe; with our own listener
		// (bound first, so the port is known) we wrap it ourselves, exactly as it would.
		ln = tls.NewListener(ln, tlsConfig)
	}
	srv, err := v2.NewWithListener(ln, opts...)
	if err != nil {
		fmt.Fprintln(os.Stderr, "server:", err)
		os.Exit(1)
	}
	fmt.Printf("LISTENING %s\n", ln.Addr().String())
	os.Stdout.Sync()

	var events, batches int64
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	done := make(chan struct{})
	quit := make(chan struct{})
	go func() {
		defer close(done)
		for batch := range srv.ReceiveChan() {
			handle(batch, w, *ackDelay, quit)
			atomic.AddInt64(&batches, 1)
			atomic.AddInt64(&events, int64(len(batch.Events)))
		}
	}()
	<-sig
	close(quit)
	_ = srv.Close()
	<-done
	_ = w.Flush()
	_ = fh.Close()
	fmt.Fprintf(os.Stderr, "received events=%d batches=%d\n", events, batches)
}

// handle writes a batch to the file (flushed, so a test reading the file sees it) before
// ACKing it: an event is ACKed only once it is stored, so a kill between the two gives a
// duplicate on resend, never a loss.
func handle(batch *lj.Batch, w *bufio.Writer, delay time.Duration, quit <-chan struct{}) {
	for _, ev := range batch.Events {
		_, _ = w.Write(ev.([]byte))
		_ = w.WriteByte('\n')
	}
	_ = w.Flush()
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-quit: // shutting down: do not make the test wait out the delay
		}
	}
	batch.ACK()
}

// writeConn is the smallest net.Conn go-lumber's client can send into: writes go to w.
type writeConn struct {
	net.Conn
	w io.Writer
}

func (c writeConn) Write(b []byte) (int, error)        { return c.w.Write(b) }
func (c writeConn) SetWriteDeadline(t time.Time) error { return nil }

// encodeWindow lets the tests compare pybeat's frames byte for byte with go-lumber's client
// (the code Beats' Logstash output runs): each stdin line is one event's JSON, sent as is.
func encodeWindow(in io.Reader, out io.Writer) error {
	data, err := io.ReadAll(in)
	if err != nil {
		return err
	}
	var events []interface{}
	for _, line := range bytes.Split(data, []byte("\n")) {
		if len(line) > 0 {
			events = append(events, line)
		}
	}
	c, err := client.NewWithConn(writeConn{w: out},
		client.CompressionLevel(0),
		client.JSONEncoder(func(v interface{}) ([]byte, error) { return v.([]byte), nil }))
	if err != nil {
		return err
	}
	return c.Send(events)
}
