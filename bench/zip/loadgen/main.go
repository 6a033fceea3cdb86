// loadgen: C concurrent clients, each POSTing the same manifest to a zip
// server and reading the whole archive (discarded, bytes counted), for N
// downloads in total. Prints zips/s and MB/s. Fails if any download is not
// a 200 with the expected byte count (when -expect is given).
//
//	go run loadgen.go -url http://127.0.0.1:8080/zip -manifest m.json -c 32 -n 256
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	url := flag.String("url", "", "zip endpoint")
	manifestPath := flag.String("manifest", "", "JSON manifest file")
	c := flag.Int("c", 32, "concurrent clients")
	n := flag.Int("n", 256, "downloads in total")
	expect := flag.Int64("expect", 0, "expected archive size (0: do not check)")
	flag.Parse()
	body, err := os.ReadFile(*manifestPath)
	if err != nil {
		panic(err)
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: *c, DisableCompression: true}}
	var next, failed int64
	var total int64
	var wg sync.WaitGroup
	start := time.Now()
	for i := 0; i < *c; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for atomic.AddInt64(&next, 1) <= int64(*n) {
				resp, err := client.Post(*url, "application/json", bytes.NewReader(body))
				if err != nil {
					atomic.AddInt64(&failed, 1)
					continue
				}
				got, err := io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != 200 || (*expect > 0 && got != *expect) {
					atomic.AddInt64(&failed, 1)
					continue
				}
				atomic.AddInt64(&total, got)
			}
		}()
	}
	wg.Wait()
	secs := time.Since(start).Seconds()
	ok := int64(*n) - failed
	fmt.Printf("zips=%d failed=%d seconds=%.2f zips_per_s=%.2f MB_per_s=%.1f\n",
		ok, failed, secs, float64(ok)/secs, float64(total)/secs/1e6)
	if failed > 0 {
		os.Exit(1)
	}
}
