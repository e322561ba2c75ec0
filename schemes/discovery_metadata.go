package schemes

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// metadataDoc is a metadata document cached until expires.
type metadataDoc struct {
	body    []byte
	expires time.Time
}

// errNotFound is a metadata URL that answered 404.
var errNotFound = errors.New("discovery: metadata not found")

// metadata decodes the JSON document at u into v, from the cache while it
// is fresh.
func (d *Discovery) metadata(ctx context.Context, u *url.URL, v any) error {
	key := u.String()
	d.mu.Lock()
	doc := d.docs[key]
	d.mu.Unlock()
	if doc == nil || time.Now().After(doc.expires) {
		var err error
		if doc, err = d.fetchMetadata(ctx, u); err != nil {
			return err
		}
		if doc.expires.After(time.Now()) {
			d.mu.Lock()
			if d.docs == nil {
				d.docs = map[string]*metadataDoc{}
			}
			if len(d.docs) > 256 {
				clear(d.docs)
			}
			d.docs[key] = doc
			d.mu.Unlock()
		}
	}
	if err := json.Unmarshal(doc.body, v); err != nil {
		return fmt.Errorf("discovery: the metadata at %s is not the JSON object it should be: %w", safeLink(u), err)
	}
	return nil
}

// fetchMetadata GETs u, bounded in time and size.
func (d *Discovery) fetchMetadata(ctx context.Context, u *url.URL) (*metadataDoc, error) {
	ctx, cancel := context.WithTimeout(ctx, metadataTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("discovery: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := d.client().Do(req)
	if err != nil {
		return nil, fmt.Errorf("discovery: fetching the metadata at %s: %w", safeLink(u), err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		io.Copy(io.Discard, io.LimitReader(resp.Body, maxMetadata))
		return nil, fmt.Errorf("%w: %s", errNotFound, safeLink(u))
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("discovery: the metadata at %s: %s", safeLink(u), resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxMetadata+1))
	if err != nil {
		return nil, fmt.Errorf("discovery: reading the metadata at %s: %w", safeLink(u), err)
	}
	if len(body) > maxMetadata {
		return nil, fmt.Errorf("discovery: the metadata at %s is larger than %d KiB", safeLink(u), maxMetadata>>10)
	}
	return &metadataDoc{body: body, expires: time.Now().Add(freshness(resp.Header))}, nil
}

// freshness is how long a response may be reused by its Cache-Control
// (max-age; no-store and no-cache: not at all) or Expires, a day at most.
func freshness(h http.Header) time.Duration {
	age := time.Duration(-1)
	for _, part := range strings.Split(strings.Join(h.Values("Cache-Control"), ","), ",") {
		name, value, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch strings.ToLower(name) {
		case "no-store", "no-cache":
			return 0
		case "max-age":
			if n, err := strconv.ParseInt(strings.Trim(value, `"`), 10, 64); err == nil && n >= 0 {
				age = time.Duration(min(n, int64(maxMetadataAge/time.Second))) * time.Second
			}
		}
	}
	if age < 0 {
		if t, err := http.ParseTime(h.Get("Expires")); err == nil {
			age = time.Until(t)
		}
	}
	return min(max(age, 0), maxMetadataAge)
}
