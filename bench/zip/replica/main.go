// replica: the seed-style bulk zip server sluice replaces, kept only as a
// benchmark peer. For each entry it reads the whole origin body into a
// growing bytes.Buffer, then writes it into archive/zip (STORE for images,
// DEFLATE otherwise), exactly the pattern whose heap profile showed
// bytes.makeSlice holding 1.76 GB of 4.9 GB.
//
// POST /zip with sluice's JSON manifest: {"entries":[{"source":"a.jpg"}]}.
//
//	go run replica.go -listen 127.0.0.1:8091 -origin http://127.0.0.1:8090
package main

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"flag"
	"io"
	"log"
	"net/http"
	"path"
	"strings"
	"time"
)

type manifest struct {
	Name    string `json:"name"`
	Entries []struct {
		Source string `json:"source"`
		Name   string `json:"name"`
	} `json:"entries"`
}

func main() {
	listen := flag.String("listen", "127.0.0.1:8091", "listen address")
	origin := flag.String("origin", "http://127.0.0.1:8090", "origin base URL")
	flag.Parse()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}}
	http.HandleFunc("/zip", func(w http.ResponseWriter, r *http.Request) {
		var m manifest
		if err := json.NewDecoder(r.Body).Decode(&m); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		w.Header().Set("Content-Type", "application/zip")
		w.Header().Set("Content-Disposition", `attachment; filename="download.zip"`)
		zw := zip.NewWriter(w)
		for _, e := range m.Entries {
			resp, err := client.Get(*origin + "/" + strings.TrimLeft(e.Source, "/"))
			if err != nil {
				log.Print(err)
				continue
			}
			var buf bytes.Buffer // the seed's growing buffer
			_, err = io.Copy(&buf, resp.Body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != 200 {
				continue
			}
			name := e.Name
			if name == "" {
				name = path.Base(e.Source)
			}
			method := zip.Deflate
			switch strings.ToLower(path.Ext(name)) {
			case ".jpg", ".jpeg", ".png", ".webp", ".gif", ".avif", ".mp4":
				method = zip.Store
			}
			fw, err := zw.CreateHeader(&zip.FileHeader{Name: name, Method: method, Modified: time.Now()})
			if err != nil {
				return
			}
			if _, err := fw.Write(buf.Bytes()); err != nil {
				return
			}
		}
		zw.Close()
	})
	log.Fatal(http.ListenAndServe(*listen, nil))
}
