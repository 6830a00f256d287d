package testenv

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"time"
)

// serveManifest serves a manifest GET or HEAD. Every GET answered 200 is a pull; on
// ProfileDockerHub pulls are budgeted per identity (who) and every answer carries Docker
// Hub's rate-limit headers.
func (p *ProfileRegistry) serveManifest(w http.ResponseWriter, r *http.Request, who string) {
	limited := p.Profile == ProfileDockerHub
	if r.Method == http.MethodHead {
		if limited {
			p.setRateHeaders(w, p.remainingPulls(who, time.Now()), who)
		}
		p.inner.ServeHTTP(w, r)
		return
	}
	now := time.Now()
	if limited {
		ok, remaining, retry := p.takePull(who, now)
		p.setRateHeaders(w, remaining, who)
		if !ok {
			w.Header().Set("Retry-After", strconv.Itoa(max(1, int(math.Ceil(retry.Seconds())))))
			writeRegistryError(w, http.StatusTooManyRequests, "TOOMANYREQUESTS",
				"You have reached your pull rate limit. You may increase the limit by authenticating and upgrading: https://www.docker.com/increase-rate-limit")
			return
		}
	}
	p.inner.ServeHTTP(&hookWriter{ResponseWriter: w, onStatus: func(code int) {
		if code == http.StatusOK {
			p.count(func(c *ProfileCounts) { c.Pulls++ })
		} else if limited {
			p.returnPull(who, now) // a failed GET is not a pull
		}
	}}, r)
}

func (p *ProfileRegistry) setRateHeaders(w http.ResponseWriter, remaining int, who string) {
	window := max(1, int(math.Ceil(p.opts.Window.Seconds())))
	w.Header().Set("ratelimit-limit", fmt.Sprintf("%d;w=%d", p.opts.PullBudget, window))
	w.Header().Set("ratelimit-remaining", fmt.Sprintf("%d;w=%d", remaining, window))
	w.Header().Set("docker-ratelimit-source", who)
}

// windowPulls drops who's pulls older than the window and returns the rest. Call with p.mu.
func (p *ProfileRegistry) windowPulls(who string, now time.Time) []time.Time {
	ts := p.pulls[who]
	for len(ts) > 0 && !now.Before(ts[0].Add(p.opts.Window)) {
		ts = ts[1:]
	}
	p.pulls[who] = ts
	return ts
}

// takePull books a pull for who at now if the budget allows it and returns the pulls left;
// past the budget it returns false and how long until the oldest pull leaves the window.
func (p *ProfileRegistry) takePull(who string, now time.Time) (ok bool, remaining int, retry time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	ts := p.windowPulls(who, now)
	if len(ts) >= p.opts.PullBudget {
		return false, 0, ts[0].Add(p.opts.Window).Sub(now)
	}
	p.pulls[who] = append(ts, now)
	return true, p.opts.PullBudget - len(ts) - 1, 0
}

// returnPull cancels the pull takePull booked for who at at.
func (p *ProfileRegistry) returnPull(who string, at time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	ts := p.pulls[who]
	for i := range ts {
		if ts[i].Equal(at) {
			p.pulls[who] = append(ts[:i:i], ts[i+1:]...)
			return
		}
	}
}

func (p *ProfileRegistry) remainingPulls(who string, now time.Time) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return max(0, p.opts.PullBudget-len(p.windowPulls(who, now)))
}

// serveTags lists repo's tags a page at a time: tags after `last`, at most `n`, with a Link
// to the next page when more remain. ProfileQuay caps pages (50 without n, n above 100 a 400);
// the others return every tag without n.
func (p *ProfileRegistry) serveTags(w http.ResponseWriter, r *http.Request, repo string) {
	page, limit := -1, -1
	if p.Profile == ProfileQuay {
		page, limit = 50, 100
	}
	q := r.URL.Query()
	if s := q.Get("n"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 || (limit >= 0 && n > limit) {
			msg := "invalid number of results requested: n=" + s
			if limit >= 0 {
				msg += fmt.Sprintf(" (at most %d)", limit)
			}
			writeRegistryError(w, http.StatusBadRequest, "PAGINATION_NUMBER_INVALID", msg)
			return
		}
		page = n
	}
	all := p.innerDo(r.Context(), http.MethodGet, "/v2/"+repo+"/tags/list", "", nil)
	var list struct {
		Name string   `json:"name"`
		Tags []string `json:"tags"`
	}
	if all.Code != http.StatusOK || json.Unmarshal(all.Body.Bytes(), &list) != nil {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(all.Code)
		_, _ = w.Write(all.Body.Bytes())
		return
	}
	tags := list.Tags
	sort.Strings(tags)
	if last := q.Get("last"); last != "" {
		tags = tags[sort.Search(len(tags), func(i int) bool { return tags[i] > last }):]
	}
	if page >= 0 && len(tags) > page {
		tags = tags[:page]
		if page > 0 {
			next := url.Values{"n": {strconv.Itoa(page)}, "last": {tags[page-1]}}
			w.Header().Set("Link", fmt.Sprintf("</v2/%s/tags/list?%s>; rel=\"next\"", repo, next.Encode()))
		}
	}
	body, _ := json.Marshal(map[string]any{"name": repo, "tags": append([]string{}, tags...)})
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(body)
}
