package main

import (
	"crypto/md5"
	"crypto/rand"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Multipart uploads: each upload a folder of parts, with the initiation's attributes.

type initiateResult struct {
	XMLName  xml.Name `xml:"InitiateMultipartUploadResult"`
	Bucket   string   `xml:"Bucket"`
	Key      string   `xml:"Key"`
	UploadID string   `xml:"UploadId"`
}

type completeRequest struct {
	Parts []struct {
		PartNumber int    `xml:"PartNumber"`
		ETag       string `xml:"ETag"`
	} `xml:"Part"`
}

type completeResult struct {
	XMLName xml.Name `xml:"CompleteMultipartUploadResult"`
	Bucket  string   `xml:"Bucket"`
	Key     string   `xml:"Key"`
	ETag    string   `xml:"ETag"`
}

func (a *xmlAPI) uploadDir(id string) (string, error) {
	if id == "" || strings.ContainsAny(id, "/.") {
		return "", errors.New("a malformed upload ID")
	}
	return filepath.Join(a.uploads, id), nil
}

func (a *xmlAPI) initiate(w http.ResponseWriter, r *http.Request, bucket, object string) {
	raw := make([]byte, 16)
	_, _ = rand.Read(raw)
	id := hex.EncodeToString(raw)
	dir := filepath.Join(a.uploads, id)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		xmlError(w, http.StatusInternalServerError, "InternalError", err.Error())
		return
	}
	header, _ := os.Create(filepath.Join(dir, "headers"))
	_ = r.Header.Write(header)
	header.Close()
	w.Header().Set("Content-Type", "application/xml")
	_ = xml.NewEncoder(w).Encode(initiateResult{Bucket: bucket, Key: object, UploadID: id})
}

func (a *xmlAPI) putPart(w http.ResponseWriter, r *http.Request, id, number string) {
	dir, err := a.uploadDir(id)
	if _, statErr := os.Stat(dir); err != nil || statErr != nil {
		xmlError(w, http.StatusNotFound, "NoSuchUpload", "no such upload")
		return
	}
	n, err := strconv.Atoi(number)
	if err != nil || n < 1 || n > 10000 {
		xmlError(w, http.StatusBadRequest, "InvalidArgument", "partNumber")
		return
	}
	file, err := os.Create(filepath.Join(dir, fmt.Sprintf("part-%05d", n)))
	if err != nil {
		xmlError(w, http.StatusInternalServerError, "InternalError", err.Error())
		return
	}
	defer file.Close()
	sum := md5.New()
	if _, err := io.Copy(io.MultiWriter(file, sum), r.Body); err != nil {
		xmlError(w, http.StatusInternalServerError, "InternalError", err.Error())
		return
	}
	w.Header().Set("ETag", quote(hex.EncodeToString(sum.Sum(nil))))
	w.WriteHeader(http.StatusOK)
}

func (a *xmlAPI) complete(w http.ResponseWriter, r *http.Request, bucket, object, id string) {
	dir, err := a.uploadDir(id)
	if err == nil {
		// A completion is idempotent (clients retry one whose answer they did not get): a repeat
		// answers what the first did.
		if done, readErr := os.ReadFile(dir + ".done"); readErr == nil {
			w.Header().Set("Content-Type", "application/xml")
			w.Write(done)
			return
		}
	}
	if _, statErr := os.Stat(dir); err != nil || statErr != nil {
		xmlError(w, http.StatusNotFound, "NoSuchUpload", "no such upload")
		return
	}
	var request completeRequest
	if err := xml.NewDecoder(r.Body).Decode(&request); err != nil || len(request.Parts) == 0 {
		xmlError(w, http.StatusBadRequest, "MalformedXML", "a CompleteMultipartUpload with parts")
		return
	}
	headerFile, err := os.Open(filepath.Join(dir, "headers"))
	if err != nil {
		xmlError(w, http.StatusInternalServerError, "InternalError", err.Error())
		return
	}
	initiation, err := readHeaders(headerFile)
	headerFile.Close()
	if err != nil {
		xmlError(w, http.StatusInternalServerError, "InternalError", err.Error())
		return
	}
	if !a.precondition(w, initiation, bucket, object) || !a.precondition(w, r.Header, bucket, object) {
		return
	}
	whole, err := os.CreateTemp(a.uploads, "complete-*")
	if err != nil {
		xmlError(w, http.StatusInternalServerError, "InternalError", err.Error())
		return
	}
	defer whole.Close()
	previous := 0
	for _, part := range request.Parts {
		if part.PartNumber <= previous {
			os.Remove(whole.Name())
			xmlError(w, http.StatusBadRequest, "InvalidPartOrder", "parts must be in ascending order")
			return
		}
		previous = part.PartNumber
		file, err := os.Open(filepath.Join(dir, fmt.Sprintf("part-%05d", part.PartNumber)))
		if err != nil {
			os.Remove(whole.Name())
			xmlError(w, http.StatusBadRequest, "InvalidPart", fmt.Sprintf("part %d was not uploaded", part.PartNumber))
			return
		}
		_, err = io.Copy(whole, file)
		file.Close()
		if err != nil {
			os.Remove(whole.Name())
			xmlError(w, http.StatusInternalServerError, "InternalError", err.Error())
			return
		}
	}
	stored, ok := a.storeFile(w, attrsFrom(initiation, bucket, object), whole)
	if !ok {
		return
	}
	answer, _ := xml.Marshal(completeResult{Bucket: bucket, Key: object, ETag: quote(stored.Etag)})
	_ = os.WriteFile(dir+".done", answer, 0o644)
	os.RemoveAll(dir)
	w.Header().Set("Content-Type", "application/xml")
	w.Write(answer)
}

func (a *xmlAPI) abort(w http.ResponseWriter, id string) {
	dir, err := a.uploadDir(id)
	if err != nil {
		xmlError(w, http.StatusNotFound, "NoSuchUpload", "no such upload")
		return
	}
	os.RemoveAll(dir)
	w.WriteHeader(http.StatusNoContent)
}

// readHeaders reads back the initiation's headers, written by http.Header.Write.
func readHeaders(r io.Reader) (http.Header, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	h := http.Header{}
	for _, line := range strings.Split(string(data), "\r\n") {
		name, value, ok := strings.Cut(line, ":")
		if ok {
			h.Add(strings.TrimSpace(name), strings.TrimSpace(value))
		}
	}
	return h, nil
}
