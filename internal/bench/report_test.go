package bench

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// sampleResult is a finished fan-out result with a latency histogram.
func sampleResult() Result {
	h := NewHistogram()
	for i := range 10000 {
		h.Record(i, time.Duration(200+i%5000)*time.Microsecond)
	}
	h.Record(0, 80*time.Millisecond)
	goroutines := 12
	return Result{
		Scenario: ScenarioFanout, Transport: "ws", Server: DefaultServer, Publisher: ViaClient,
		StartedAt: time.Date(2025, 11, 27, 12, 0, 0, 0, time.UTC), Seconds: 2.5,
		Clients: 100, Connections: 100, ConnectSeconds: 0.1, ConnectRate: 1000,
		Sent: 101, DeliveriesExpected: 10001, DeliveriesReceived: 10001,
		DeliverySeconds: 0.5, DeliveriesPerSecond: 20002,
		Latency: summarize(h.Snapshot()),
		Process: &ServerProcess{PID: 42, ClockTicks: 100, CPUSeconds: 0.4, CPUSecondsPerMillionDeliveries: 40,
			RSSBeforeBytes: 10 << 20, RSSAfterBytes: 12 << 20, RSSPerConnectionBytes: 20971.52,
			GoroutinesBefore: &goroutines, GoroutinesAfter: &goroutines},
		Errors: map[string]int64{"connect": 1}, ErrorSamples: []string{`connect: <script>alert(1)</script>`},
		OK: true,
	}
}

func TestWriteHTML(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	if err := WriteHTML(&b, sampleResult()); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	for _, want := range []string{"<svg", "<rect", "p99.9", "PASS", "deliveries_per_second", "</html>"} {
		if !strings.Contains(page, want) {
			t.Errorf("HTML report lacks %q", want)
		}
	}
	// Self-contained: no scripts, nothing loaded from elsewhere, and text
	// from the run is escaped.
	for _, bad := range []string{"<script", "src=", "href=", "@import"} {
		if strings.Contains(page, bad) {
			t.Errorf("HTML report contains %q", bad)
		}
	}
}

func TestWriteHTMLWithoutLatency(t *testing.T) {
	t.Parallel()
	r := sampleResult()
	r.Latency, r.OK, r.Failures = nil, false, []string{"3 of 100 clients connected"}
	var b bytes.Buffer
	if err := WriteHTML(&b, r); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), "<svg") || !strings.Contains(b.String(), "FAIL") {
		t.Error("a result without latency drew a chart, or a failure shows no FAIL")
	}
}

func TestWriteText(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	if err := WriteText(&b, sampleResult()); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"10,001 of 10,001 expected (match)", "20,002 deliveries/s", "1,000 handshakes/s",
		"40.00 CPU-s per million", "20.5 KiB per connection", "goroutines", "PASS"} {
		if !strings.Contains(out, want) {
			t.Errorf("text report lacks %q:\n%s", want, out)
		}
	}
}

func TestFormatting(t *testing.T) {
	t.Parallel()
	for in, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", 1234567: "1,234,567", -4500: "-4,500"} {
		if got := count(in); got != want {
			t.Errorf("count(%d) = %q, want %q", in, got, want)
		}
	}
	if got := millis(0.25); got != "250µs" {
		t.Errorf("millis(0.25) = %q", got)
	}
	if got := bytesIEC(3 << 20); got != "3.0 MiB" {
		t.Errorf("bytesIEC = %q", got)
	}
}
