package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
)

// WriteJSON writes r as one indented JSON object and a newline.
func WriteJSON(w io.Writer, r Result) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return fmt.Errorf("write json: %w", err)
	}
	return nil
}

// WriteText writes r as an aligned, human-readable report.
func WriteText(w io.Writer, r Result) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, row := range reportRows(r) {
		fmt.Fprintf(tw, "%s\t%s\n", row[0], row[1])
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}

// reportRows is the report as label/value pairs, shared by the text and
// HTML forms.
func reportRows(r Result) [][2]string {
	var rows [][2]string
	add := func(label, format string, args ...any) {
		rows = append(rows, [2]string{label, fmt.Sprintf(format, args...)})
	}
	head := fmt.Sprintf("%s over %s (%s)", r.Scenario, r.Transport, r.Server)
	if r.Publisher != "" {
		head += ", publisher: " + r.Publisher
	}
	add("scenario", "%s", head)
	for i, e := range r.Endpoints {
		label := ""
		if i == 0 {
			label = "endpoints"
		}
		line := fmt.Sprintf("%s: %s handshakes", e.Server, count(e.Handshakes))
		if e.Publisher {
			line += ", the publisher"
		}
		add(label, "%s", line)
	}
	add("duration", "%.2fs", r.Seconds)
	for _, a := range r.Attacks {
		verdict := "held"
		if !a.Held {
			verdict = "NOT HELD"
		}
		add("attack", "%s: %s (%s)", a.Name, a.Outcome, verdict)
		if a.RSSPeakBytes > 0 {
			add("", "server rss %s before, %s at peak, %s after", bytesIEC(float64(a.RSSBeforeBytes)), bytesIEC(float64(a.RSSPeakBytes)), bytesIEC(float64(a.RSSAfterBytes)))
		}
	}
	if r.Scenario.hasClients() {
		add("connections", "%s of %s in %.2fs (%s handshakes/s)", count(r.Connections), count(int64(r.Clients)), r.ConnectSeconds, perSec(r.ConnectRate))
	}
	if r.ConnectErrors > 0 || r.Dropped > 0 {
		add("connection errors", "%s failed, %s dropped", count(r.ConnectErrors), count(r.Dropped))
	}
	if c := r.Churn; c != nil {
		add("churn", "%s of %s cycles in %.2fs (%s cycles/s), %s failed", count(c.Completed), count(int64(c.Cycles)), c.Seconds, perSec(c.CyclesPerSecond), count(c.Failed))
	}
	if st := r.Stalled; st != nil {
		add("stalled", "%s subscribers that never read, %s dropped by the server", count(st.Connections), count(st.Dropped))
		if st.RSSPeakBytes > 0 {
			add("stalled rss", "%s before, %s at peak, %s after they were gone", bytesIEC(float64(st.RSSBeforeBytes)), bytesIEC(float64(st.RSSPeakBytes)), bytesIEC(float64(st.RSSAfterBytes)))
		}
	}
	if r.Sent > 0 || r.SendErrors > 0 {
		msg := fmt.Sprintf("%s sent, %s failed", count(r.Sent), count(r.SendErrors))
		if r.APICalls > 0 {
			msg += fmt.Sprintf(" (%s API calls)", count(r.APICalls))
		}
		add("messages", "%s", msg)
	}
	if f := r.Fill; f != nil {
		fill := fmt.Sprintf("%s stored in %.2fs (%s/s), %s failed", count(f.Messages), f.Seconds, perSec(f.MessagesPerSecond), count(f.Failed))
		if f.CPUSeconds > 0 {
			fill += fmt.Sprintf("; server cpu %.2fs (%.2f CPU-s per million)", f.CPUSeconds, f.CPUSecondsPerMillionMessages)
		}
		add("fill", "%s", fill)
	}
	if m := r.Memory; m != nil {
		how := fmt.Sprintf("after %gs", m.SettleSeconds)
		if m.GC {
			how = "after a GC and " + fmt.Sprintf("%gs", m.SettleSeconds)
		}
		add("server memory", "rss %s empty, %s with %s pending (%s per message), %s",
			bytesIEC(float64(m.RSSEmptyBytes)), bytesIEC(float64(m.RSSFilledBytes)), count(m.Pending), bytesIEC(m.RSSPerMessageBytes), how)
		if m.HeapEmptyBytes > 0 || m.HeapFilledBytes > 0 {
			add("", "go heap in use %s empty, %s with the messages pending", bytesIEC(float64(m.HeapEmptyBytes)), bytesIEC(float64(m.HeapFilledBytes)))
		}
	}
	if h := r.Hooks; h != nil {
		types := make([]string, 0, len(h.Events))
		for typ, n := range h.Events {
			types = append(types, typ+" "+count(n))
		}
		sort.Strings(types)
		add("hook receiver", "%s answering after %s: %s posts (%s)", h.Addr, millis(h.DelayMs), count(h.Posts), strings.Join(types, ", "))
	}
	if off := r.Offline; off != nil {
		add("offline", "%s users disconnected in %.2fs; %s user.offline in %s posts, first after %.2fs, last after %.2fs",
			count(off.Users), off.CloseSeconds, count(off.Events), count(off.Posts), off.FirstSeconds, off.LastSeconds)
	}
	if r.Scenario.sends() && (r.Scenario != ScenarioInbox || r.Clients > 0) {
		rows = append(rows, deliveryRows(r)...)
	} else if r.DeliveriesReceived > 0 {
		add("deliveries", "%s", count(r.DeliveriesReceived))
	}
	if rec := r.Recovery; rec != nil {
		add("recovery", "%s of %s clients got everything they missed, %s not told so; %s/s over %.3fs",
			count(rec.Complete), count(rec.Clients), count(rec.Refused), perSec(rec.MessagesPerSecond), rec.Seconds)
		if t := rec.Time; t != nil {
			add("", "per client, to its last message: p50 %s  p99 %s  max %s", millis(t.P50Ms), millis(t.P99Ms), millis(t.MaxMs))
		}
	}
	if l := r.Latency; l != nil {
		add("latency", "p50 %s  p90 %s  p99 %s  p99.9 %s  max %s (%s samples)",
			millis(l.P50Ms), millis(l.P90Ms), millis(l.P99Ms), millis(l.P999Ms), millis(l.MaxMs), count(int64(l.Count)))
	}
	if r.MeasuredSeconds > 0 {
		add("load cpu", "%.2fs over a %.2fs measured phase (this process)", r.LoadCPUSeconds, r.MeasuredSeconds)
	}
	if p := r.Process; p != nil && r.Scenario != ScenarioAbuse {
		if len(p.PIDs) > 0 {
			pids := make([]string, len(p.PIDs))
			for i, pid := range p.PIDs {
				pids[i] = fmt.Sprint(pid)
			}
			add("server pids", "%s (figures summed over them)", strings.Join(pids, ", "))
		} else {
			add("server pid", "%d", p.PID)
		}
		add("server cpu", "%s", processCPU(*p))
		mem := processRSS(*p)
		if p.RSSPerConnectionBytes != 0 {
			mem += fmt.Sprintf(" (%s per connection)", bytesIEC(p.RSSPerConnectionBytes))
		}
		add("server rss", "%s", mem)
		add("server threads", "%d -> %d", p.ThreadsBefore, p.ThreadsAfter)
		if p.GoroutinesBefore != nil && p.GoroutinesAfter != nil {
			add("server goroutines", "%d -> %d", *p.GoroutinesBefore, *p.GoroutinesAfter)
		}
		for _, q := range p.Processes {
			add(fmt.Sprintf("pid %d", q.PID), "cpu %s; rss %s; threads %d -> %d", processCPU(q), processRSS(q), q.ThreadsBefore, q.ThreadsAfter)
		}
	}
	if b := r.Baseline; b != nil {
		add("baseline", "%s", b.Server)
		if b.Settings.Channel != "" && b.Settings.Channel != r.Settings.Channel {
			add("", "channel %s (this run: %s)", b.Settings.Channel, r.Settings.Channel)
		}
		for _, row := range deliveryRows(*b) {
			add("", "%s %s", row[0], row[1])
		}
		if l := b.Latency; l != nil {
			add("", "latency p50 %s  p99 %s", millis(l.P50Ms), millis(l.P99Ms))
		}
		if p := b.Process; p != nil {
			add("", "server cpu %.2fs (%.2f CPU-s per million deliveries)", p.CPUSeconds, p.CPUSecondsPerMillionDeliveries)
		}
		for _, e := range b.ErrorSamples {
			add("", "error: %s", e)
		}
		if r.VsBaseline > 0 {
			add("vs baseline", "%.3f× the baseline's deliveries/s (%+.1f %%)", r.VsBaseline, (r.VsBaseline-1)*100)
		}
	}
	if r.StatsBefore != nil && r.StatsAfter != nil {
		add("server connections", "%d -> %d", r.StatsBefore.Connections, r.StatsAfter.Connections)
	}
	if len(r.Errors) > 0 {
		kinds := make([]string, 0, len(r.Errors))
		for k, v := range r.Errors {
			kinds = append(kinds, fmt.Sprintf("%s: %d", k, v))
		}
		sort.Strings(kinds)
		add("errors", "%s", strings.Join(kinds, ", "))
		for _, s := range r.ErrorSamples {
			add("", "%s", s)
		}
	}
	if r.OK {
		add("result", "PASS")
	} else {
		add("result", "FAIL: %s", strings.Join(r.Failures, "; "))
	}
	return rows
}

// processCPU describes the CPU time of a server process (or of their sum).
func processCPU(p ServerProcess) string {
	cpu := fmt.Sprintf("%.2fs measured, %.2fs connecting", p.CPUSeconds, p.ConnectCPUSeconds)
	if p.CPUSecondsPerMillionDeliveries > 0 {
		cpu += fmt.Sprintf(" (%.2f CPU-s per million deliveries)", p.CPUSecondsPerMillionDeliveries)
	}
	return cpu
}

// processRSS describes the resident size of a server process before and
// after.
func processRSS(p ServerProcess) string {
	return fmt.Sprintf("%s -> %s", bytesIEC(float64(p.RSSBeforeBytes)), bytesIEC(float64(p.RSSAfterBytes)))
}

// deliveryRows are the deliveries and throughput rows of a scenario that
// sends messages.
func deliveryRows(r Result) [][2]string {
	verdict := "match"
	switch {
	case r.Sent == 0:
		verdict = "nothing was sent"
	case r.DeliveriesExpected != r.DeliveriesReceived || r.Missing > 0 || r.Duplicates > 0:
		verdict = fmt.Sprintf("MISMATCH: %s missing, %s duplicates", count(r.Missing), count(r.Duplicates))
	}
	return [][2]string{
		{"deliveries", fmt.Sprintf("%s of %s expected (%s)", count(r.DeliveriesReceived), count(r.DeliveriesExpected), verdict)},
		{"throughput", fmt.Sprintf("%s deliveries/s over %.3fs", perSec(r.DeliveriesPerSecond), r.DeliverySeconds)},
	}
}

// count formats n with thousands separators.
func count(n int64) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// perSec formats a per-second rate: grouped digits, no fraction above 100.
func perSec(v float64) string {
	if v >= 100 {
		return count(int64(v + 0.5))
	}
	return fmt.Sprintf("%.1f", v)
}

// millis formats milliseconds with a precision that suits their size.
func millis(v float64) string {
	switch {
	case v < 1:
		return fmt.Sprintf("%.0fµs", v*1000)
	case v < 100:
		return fmt.Sprintf("%.2fms", v)
	default:
		return fmt.Sprintf("%.0fms", v)
	}
}

// bytesIEC formats a byte count in KiB, MiB or GiB.
func bytesIEC(v float64) string {
	abs := v
	if abs < 0 {
		abs = -abs
	}
	switch {
	case abs >= 1<<30:
		return fmt.Sprintf("%.2f GiB", v/(1<<30))
	case abs >= 1<<20:
		return fmt.Sprintf("%.1f MiB", v/(1<<20))
	case abs >= 1<<10:
		return fmt.Sprintf("%.1f KiB", v/(1<<10))
	default:
		return fmt.Sprintf("%.0f B", v)
	}
}
