package bench

import (
	"fmt"
	"io"
	"time"

	"github.com/schollz/progressbar/v3"
)

// progressInterval is how often a bar is redrawn from its counter.
const progressInterval = 150 * time.Millisecond

// progress shows one phase of a run as a bar on a writer, fed by polling a
// counter, so that the hot paths only bump atomics. A nil *progress (no
// writer) does nothing.
type progress struct {
	bar  *progressbar.ProgressBar
	stop chan struct{}
	done chan struct{}
}

// startProgress shows a bar for a phase with max steps whose current value
// value returns, until Stop, with a rate in unit per second unless unit is
// empty. It returns nil when w is nil.
func startProgress(w io.Writer, desc string, max int64, unit string, value func() int64) *progress {
	if w == nil || max <= 0 {
		return nil
	}
	opts := []progressbar.Option{
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription(fmt.Sprintf("%-12s", desc)),
		progressbar.OptionSetWidth(30),
		progressbar.OptionShowCount(),
		progressbar.OptionThrottle(progressInterval),
		progressbar.OptionSetPredictTime(false),
		progressbar.OptionOnCompletion(func() { fmt.Fprintln(w) }),
	}
	if unit != "" {
		opts = append(opts, progressbar.OptionShowIts(), progressbar.OptionSetItsString(unit))
	}
	bar := progressbar.NewOptions64(max, opts...)
	p := &progress{bar: bar, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		t := time.NewTicker(progressInterval)
		defer t.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-t.C:
				_ = bar.Set64(min(value(), max))
			}
		}
	}()
	return p
}

// Stop draws the final value, ends the bar's line and stops the poller.
func (p *progress) Stop(final int64) {
	if p == nil {
		return
	}
	close(p.stop)
	<-p.done
	if final >= p.bar.GetMax64() {
		_ = p.bar.Finish()
		return
	}
	_ = p.bar.Set64(final)
	_ = p.bar.Exit() // keeps the bar where the phase ended
}
