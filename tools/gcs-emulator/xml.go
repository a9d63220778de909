package main

import (
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/fsouza/fake-gcs-server/fakestorage"
)

// xmlAPI serves the XML API routes and hands everything else (the JSON API under /storage/v1,
// /upload, /_internal) to fake-gcs-server.
type xmlAPI struct {
	store   *fakestorage.Server
	uploads string
	json    http.Handler
	// readRate holds each download to this many bytes a second (0: no limit).
	readRate int64
}

func (a *xmlAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := r.URL.EscapedPath()
	for _, prefix := range []string{"/storage/", "/upload/", "/download/", "/batch/", "/_internal/"} {
		if strings.HasPrefix(path, prefix) {
			a.json.ServeHTTP(w, r)
			return
		}
	}
	bucket, object, err := splitPath(path)
	if err != nil || bucket == "" {
		xmlError(w, http.StatusBadRequest, "InvalidURI", "expected /BUCKET or /BUCKET/OBJECT")
		return
	}
	query := r.URL.Query()
	if object == "" {
		if r.Method == http.MethodGet {
			a.list(w, r, bucket)
			return
		}
		xmlError(w, http.StatusMethodNotAllowed, "MethodNotAllowed", r.Method+" on a bucket")
		return
	}
	switch {
	case r.Method == http.MethodPost && query.Has("uploads"):
		a.initiate(w, r, bucket, object)
	case r.Method == http.MethodPut && query.Has("uploadId"):
		a.putPart(w, r, query.Get("uploadId"), query.Get("partNumber"))
	case r.Method == http.MethodPost && query.Has("uploadId"):
		a.complete(w, r, bucket, object, query.Get("uploadId"))
	case r.Method == http.MethodDelete && query.Has("uploadId"):
		a.abort(w, query.Get("uploadId"))
	case r.Method == http.MethodPut && r.Header.Get("x-goog-copy-source") != "":
		a.copy(w, r, bucket, object)
	case r.Method == http.MethodPut:
		a.put(w, r, bucket, object)
	case r.Method == http.MethodGet || r.Method == http.MethodHead:
		a.get(w, r, bucket, object)
	case r.Method == http.MethodDelete:
		a.delete(w, bucket, object)
	default:
		xmlError(w, http.StatusMethodNotAllowed, "MethodNotAllowed", r.Method)
	}
}

// splitPath turns /bucket/some%2Fkey into ("bucket", "some/key").
func splitPath(escaped string) (string, string, error) {
	trimmed := strings.TrimPrefix(escaped, "/")
	bucket, rest, _ := strings.Cut(trimmed, "/")
	object, err := url.PathUnescape(rest)
	return bucket, object, err
}

func xmlError(w http.ResponseWriter, status int, code, message string) {
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	fmt.Fprintf(w, "<?xml version='1.0' encoding='UTF-8'?><Error><Code>%s</Code><Message>%s</Message></Error>",
		code, xmlEscape(message))
}

func xmlEscape(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

// attrsFrom reads what a PUT or an initiation says of the object: its type and x-goog-meta-*.
func attrsFrom(h http.Header, bucket, object string) fakestorage.ObjectAttrs {
	metadata := map[string]string{}
	for name, values := range h {
		lower := strings.ToLower(name)
		if strings.HasPrefix(lower, "x-goog-meta-") && len(values) > 0 {
			metadata[strings.TrimPrefix(lower, "x-goog-meta-")] = values[0]
		}
	}
	return fakestorage.ObjectAttrs{
		BucketName:         bucket,
		Name:               object,
		ContentType:        h.Get("Content-Type"),
		ContentEncoding:    h.Get("Content-Encoding"),
		ContentDisposition: h.Get("Content-Disposition"),
		CacheControl:       h.Get("Cache-Control"),
		Metadata:           metadata,
	}
}

// precondition checks x-goog-if-generation-match: "0" means the object must not exist.
func (a *xmlAPI) precondition(w http.ResponseWriter, h http.Header, bucket, object string) bool {
	want := h.Get("x-goog-if-generation-match")
	if want == "" {
		return true
	}
	existing, err := a.store.GetObjectStreaming(bucket, object)
	generation := int64(0)
	if err == nil {
		generation = existing.Generation
		existing.Close()
	}
	if strconv.FormatInt(generation, 10) != want {
		xmlError(w, http.StatusPreconditionFailed, "PreconditionFailed",
			fmt.Sprintf("generation is %d, not %s", generation, want))
		return false
	}
	return true
}

// store writes the object from a file, which it removes, and answers with its generation.
func (a *xmlAPI) storeFile(w http.ResponseWriter, attrs fakestorage.ObjectAttrs, file *os.File) (fakestorage.ObjectAttrs, bool) {
	defer os.Remove(file.Name())
	if _, err := file.Seek(0, io.SeekStart); err != nil {
		xmlError(w, http.StatusInternalServerError, "InternalError", err.Error())
		return attrs, false
	}
	if err := a.store.CreateObjectStreaming(fakestorage.StreamingObject{ObjectAttrs: attrs, Content: file}); err != nil {
		xmlError(w, http.StatusInternalServerError, "InternalError", err.Error())
		return attrs, false
	}
	stored, err := a.store.GetObjectStreaming(attrs.BucketName, attrs.Name)
	if err != nil {
		xmlError(w, http.StatusInternalServerError, "InternalError", err.Error())
		return attrs, false
	}
	stored.Close()
	w.Header().Set("ETag", quote(stored.Etag))
	w.Header().Set("x-goog-generation", strconv.FormatInt(stored.Generation, 10))
	return stored.ObjectAttrs, true
}

func quote(etag string) string { return `"` + strings.Trim(etag, `"`) + `"` }

// spool copies a request body to a temporary file under the uploads folder.
func (a *xmlAPI) spool(body io.Reader, pattern string) (*os.File, error) {
	file, err := os.CreateTemp(a.uploads, pattern)
	if err != nil {
		return nil, err
	}
	if _, err := io.Copy(file, body); err != nil {
		file.Close()
		os.Remove(file.Name())
		return nil, err
	}
	return file, nil
}

func (a *xmlAPI) put(w http.ResponseWriter, r *http.Request, bucket, object string) {
	if !a.precondition(w, r.Header, bucket, object) {
		return
	}
	file, err := a.spool(r.Body, "put-*")
	if err != nil {
		xmlError(w, http.StatusInternalServerError, "InternalError", err.Error())
		return
	}
	defer file.Close()
	if _, ok := a.storeFile(w, attrsFrom(r.Header, bucket, object), file); ok {
		w.WriteHeader(http.StatusOK)
	}
}

func (a *xmlAPI) copy(w http.ResponseWriter, r *http.Request, bucket, object string) {
	if !a.precondition(w, r.Header, bucket, object) {
		return
	}
	srcBucket, srcObject, err := splitPath("/" + strings.TrimPrefix(r.Header.Get("x-goog-copy-source"), "/"))
	if err != nil {
		xmlError(w, http.StatusBadRequest, "InvalidArgument", "x-goog-copy-source")
		return
	}
	source, err := a.store.GetObjectStreaming(srcBucket, srcObject)
	if err != nil {
		xmlError(w, http.StatusNotFound, "NoSuchKey", "the copy source does not exist")
		return
	}
	defer source.Close()
	file, err := a.spool(source.Content, "copy-*")
	if err != nil {
		xmlError(w, http.StatusInternalServerError, "InternalError", err.Error())
		return
	}
	defer file.Close()
	// The copy is a new object: the storage gives it its own generation, checksums and times.
	attrs := fakestorage.ObjectAttrs{
		BucketName: bucket, Name: object, ContentType: source.ContentType,
		ContentEncoding: source.ContentEncoding, ContentDisposition: source.ContentDisposition,
		CacheControl: source.CacheControl, Metadata: source.Metadata,
	}
	if r.Header.Get("x-goog-metadata-directive") == "REPLACE" {
		attrs = attrsFrom(r.Header, bucket, object)
	}
	if _, ok := a.storeFile(w, attrs, file); ok {
		w.Header().Set("Content-Type", "application/xml")
		fmt.Fprint(w, "<?xml version='1.0' encoding='UTF-8'?><CopyObjectResult></CopyObjectResult>")
	}
}

func (a *xmlAPI) get(w http.ResponseWriter, r *http.Request, bucket, object string) {
	obj, err := a.store.GetObjectStreaming(bucket, object)
	if err != nil {
		xmlError(w, http.StatusNotFound, "NoSuchKey", "The specified key does not exist.")
		return
	}
	defer obj.Close()
	h := w.Header()
	for k, v := range obj.Metadata {
		h.Set("x-goog-meta-"+k, v)
	}
	if obj.ContentType != "" {
		h.Set("Content-Type", obj.ContentType)
	}
	h.Set("ETag", quote(obj.Etag))
	h.Set("x-goog-generation", strconv.FormatInt(obj.Generation, 10))
	h.Set("x-goog-stored-content-length", strconv.FormatInt(obj.Size, 10))
	modified := obj.Updated
	if modified.IsZero() {
		modified = time.Now()
	}
	if a.readRate > 0 {
		w = &throttled{ResponseWriter: w, rate: a.readRate}
	}
	// ServeContent answers Range, If-Match, If-None-Match, If-(Un)Modified-Since and HEAD.
	http.ServeContent(w, r, "", modified, obj.Content)
}

func (a *xmlAPI) delete(w http.ResponseWriter, bucket, object string) {
	// fake-gcs-server deletes only through its JSON API: ask it there.
	target := "/storage/v1/b/" + url.PathEscape(bucket) + "/o/" + url.PathEscape(object)
	recorder := httptest.NewRecorder()
	a.json.ServeHTTP(recorder, httptest.NewRequest(http.MethodDelete, target, nil))
	switch {
	case recorder.Code == http.StatusNotFound:
		xmlError(w, http.StatusNotFound, "NoSuchKey", "The specified key does not exist.")
	case recorder.Code >= 300:
		xmlError(w, recorder.Code, "InternalError", recorder.Body.String())
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}

type listResult struct {
	XMLName        xml.Name       `xml:"ListBucketResult"`
	Name           string         `xml:"Name"`
	Prefix         string         `xml:"Prefix"`
	Contents       []listContents `xml:"Contents"`
	CommonPrefixes []listPrefix   `xml:"CommonPrefixes"`
}

type listContents struct {
	Key          string `xml:"Key"`
	Size         int64  `xml:"Size"`
	LastModified string `xml:"LastModified"`
	ETag         string `xml:"ETag"`
}

type listPrefix struct {
	Prefix string `xml:"Prefix"`
}

func (a *xmlAPI) list(w http.ResponseWriter, r *http.Request, bucket string) {
	q := r.URL.Query()
	objects, prefixes, err := a.store.ListObjectsWithOptions(bucket, fakestorage.ListOptions{
		Prefix:      q.Get("prefix"),
		Delimiter:   q.Get("delimiter"),
		StartOffset: q.Get("start-after"),
	})
	if err != nil {
		xmlError(w, http.StatusNotFound, "NoSuchBucket", err.Error())
		return
	}
	result := listResult{Name: bucket, Prefix: q.Get("prefix")}
	after := q.Get("start-after")
	for _, o := range objects {
		if after != "" && o.Name <= after {
			continue
		}
		modified := o.Updated
		if modified.IsZero() {
			modified = time.Now()
		}
		result.Contents = append(result.Contents, listContents{
			Key: o.Name, Size: o.Size, LastModified: modified.UTC().Format(time.RFC3339Nano), ETag: quote(o.Etag),
		})
	}
	sort.Strings(prefixes)
	for _, p := range prefixes {
		result.CommonPrefixes = append(result.CommonPrefixes, listPrefix{Prefix: p})
	}
	w.Header().Set("Content-Type", "application/xml")
	_ = xml.NewEncoder(w).Encode(result)
}

// throttled holds a response body to `rate` bytes a second, as a slow link between the store and
// its client would: the tests give a client timeouts shorter than a whole download this way.
type throttled struct {
	http.ResponseWriter
	rate  int64
	start time.Time
	sent  int64
}

func (t *throttled) Write(p []byte) (int, error) {
	if t.start.IsZero() {
		t.start = time.Now()
	}
	written := 0
	for len(p) > 0 {
		chunk := min(len(p), 64<<10)
		n, err := t.ResponseWriter.Write(p[:chunk])
		written += n
		t.sent += int64(n)
		if err != nil {
			return written, err
		}
		p = p[chunk:]
		due := t.start.Add(time.Duration(float64(t.sent) / float64(t.rate) * float64(time.Second)))
		time.Sleep(time.Until(due))
	}
	return written, nil
}
