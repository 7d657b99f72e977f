package bench

import (
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"math"
	"strconv"
	"time"
)

// WriteHTML writes r as a self-contained HTML page: the report table and,
// when there are latency samples, a histogram drawn as inline SVG. It
// loads nothing from anywhere.
func WriteHTML(w io.Writer, r Result) error {
	data := struct {
		Title string
		R     Result
		Rows  [][2]string
		Chart *chart
	}{
		Title: fmt.Sprintf("herald bench %s, %s", r.Scenario, r.StartedAt.Format(time.RFC3339)),
		R:     r,
		Rows:  reportRows(r),
		Chart: newChart(r.Latency),
	}
	t, err := reportTemplate()
	if err != nil {
		return fmt.Errorf("html report template: %w", err)
	}
	if err := t.Execute(w, data); err != nil {
		return fmt.Errorf("write html report: %w", err)
	}
	return nil
}

// chart is a latency histogram laid out for SVG: log-scaled time on x
// (every bin has the same width, the bins being log-spaced), counts on y.
type chart struct {
	Width, Height    int
	Left, Right      float64 // x of the plot's edges
	Top, Bottom      float64 // y of the plot's edges; Bottom is the x axis
	PlotW, PlotH     float64
	Bars             []chartBar
	XTicks, YTicks   []chartTick
	Markers          []chartTick
	XLabelX, XLabelY float64
	YLabelMid        float64
}

type chartBar struct {
	X, Y, W, H float64
	Title      string
}

type chartTick struct {
	X, Y           float64
	LabelX, LabelY float64
	Label          string
	Anchor         string // text-anchor of the label
}

// Chart geometry, in SVG user units.
const (
	chartWidth     = 860
	chartHeight    = 390
	chartLeft      = 70
	chartRight     = 20
	chartTop       = 60 // room for four marker labels
	chartMarkerRow = 13
	chartBottom    = 50
	chartYTicks    = 4
	minBarHeight   = 1.5 // so that a bin with a few samples still shows
)

// newChart lays out l's histogram, nil when there is nothing to draw.
func newChart(l *Latency) *chart {
	if l == nil || len(l.Histogram) == 0 {
		return nil
	}
	bins := l.Histogram
	c := &chart{
		Width: chartWidth, Height: chartHeight,
		Left: chartLeft, Top: chartTop,
		PlotW: chartWidth - chartLeft - chartRight,
		PlotH: chartHeight - chartTop - chartBottom,
	}
	c.Right = c.Left + c.PlotW
	c.Bottom = c.Top + c.PlotH
	c.XLabelX, c.XLabelY = c.Left+c.PlotW/2, c.Bottom+40
	c.YLabelMid = c.Top + c.PlotH/2
	var peak uint64
	for _, b := range bins {
		peak = max(peak, b.Count)
	}
	step := niceStep(float64(peak) / chartYTicks)
	top := math.Ceil(float64(peak)/step) * step
	bw := c.PlotW / float64(len(bins))
	for i, b := range bins {
		if b.Count == 0 {
			continue
		}
		h := max(float64(b.Count)/top*c.PlotH, minBarHeight)
		c.Bars = append(c.Bars, chartBar{
			X: c.Left + float64(i)*bw + 0.5, Y: c.Bottom - h, W: math.Max(bw-1, 0.5), H: h,
			Title: fmt.Sprintf("%s to %s: %s", millis(b.LowMs), millis(b.HighMs), count(int64(b.Count))),
		})
	}
	for v := 0.0; v <= top; v += step {
		y := c.Bottom - v/top*c.PlotH
		c.YTicks = append(c.YTicks, chartTick{X: c.Left, Y: y, LabelX: c.Left - 6, LabelY: y + 4, Label: count(int64(v))})
	}
	lo, hi := math.Log10(bins[0].LowMs), math.Log10(bins[len(bins)-1].HighMs)
	xOf := func(vMs float64) float64 {
		return c.Left + (math.Log10(math.Max(vMs, 1e-9))-lo)/(hi-lo)*c.PlotW
	}
	xTick := func(x float64, label string) chartTick {
		return chartTick{X: x, Y: c.Bottom, LabelX: x, LabelY: c.Bottom + 5, Label: label}
	}
	for k := math.Ceil(lo); k <= math.Floor(hi); k++ {
		c.XTicks = append(c.XTicks, xTick(xOf(math.Pow(10, k)), axisLabel(math.Pow(10, k))))
	}
	if len(c.XTicks) < 2 { // a narrow range: label its ends
		c.XTicks = []chartTick{xTick(c.Left, millis(bins[0].LowMs)), xTick(c.Right, millis(bins[len(bins)-1].HighMs))}
	}
	// One row of the top margin per marker, so that close percentiles do
	// not write over each other; labels near the right edge end at their
	// line instead of starting there.
	for i, m := range []struct {
		name string
		v    float64
	}{{"p50", l.P50Ms}, {"p99", l.P99Ms}, {"p99.9", l.P999Ms}, {"max", l.MaxMs}} {
		x := xOf(m.v)
		t := chartTick{X: x, Y: c.Top, LabelX: x + 4, LabelY: chartMarkerRow * float64(i+1), Label: m.name + " " + millis(m.v), Anchor: "start"}
		if x > c.Left+c.PlotW*0.7 {
			t.LabelX, t.Anchor = x-4, "end"
		}
		c.Markers = append(c.Markers, t)
	}
	return c
}

// niceStep rounds a raw axis step up to 1, 2 or 5 times a power of ten.
func niceStep(raw float64) float64 {
	if raw <= 1 {
		return 1
	}
	pow := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if raw <= m*pow {
			return m * pow
		}
	}
	return 10 * pow
}

// axisLabel names a power of ten of milliseconds: 100µs, 1ms, 10s.
func axisLabel(vMs float64) string {
	switch {
	case vMs < 1:
		return fmt.Sprintf("%gµs", vMs*1000)
	case vMs < 1000:
		return fmt.Sprintf("%gms", vMs)
	default:
		return fmt.Sprintf("%gs", vMs/1000)
	}
}

// reportTemplate parses the page template; parsed per call, so the
// package holds no state.
func reportTemplate() (*template.Template, error) {
	return template.New("report").Funcs(template.FuncMap{
		"f": func(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) },
		"json": func(v any) (string, error) {
			b, err := json.MarshalIndent(v, "", "  ")
			return string(b), err
		},
	}).Parse(reportPage)
}

const reportPage = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{{.Title}}</title>
<style>
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 940px; color: #1d2430; padding: 0 1em; }
h1 { font-size: 1.4em; margin-bottom: .2em; }
h2 { font-size: 1.15em; }
.verdict { display: inline-block; padding: .15em .6em; border-radius: 4px; font-weight: 600; color: #fff; }
.pass { background: #23863a; } .fail { background: #c0392b; }
table { border-collapse: collapse; margin: 1em 0; width: 100%; }
td { padding: .3em .8em; border-bottom: 1px solid #e3e6ea; vertical-align: top; }
td:first-child { color: #5b6470; white-space: nowrap; width: 1%; }
svg { background: #fafbfc; border: 1px solid #e3e6ea; border-radius: 4px; max-width: 100%; height: auto; }
.bar { fill: #3b73b9; } .bar:hover { fill: #f0a020; }
.axis { stroke: #5b6470; stroke-width: 1; }
.grid { stroke: #e3e6ea; stroke-width: 1; }
.marker { stroke: #c0392b; stroke-width: 1; stroke-dasharray: 4 3; }
text { font: 11px system-ui, sans-serif; fill: #3d4550; }
text.mlabel { fill: #c0392b; }
details pre { background: #f4f5f7; padding: 1em; overflow-x: auto; font-size: 12px; }
</style>
</head>
<body>
<h1>{{.Title}}</h1>
<p>{{if .R.OK}}<span class="verdict pass">PASS</span>{{else}}<span class="verdict fail">FAIL</span>{{end}}</p>
<table>
{{range .Rows}}<tr><td>{{index . 0}}</td><td>{{index . 1}}</td></tr>
{{end}}</table>
{{with .Chart}}<h2>Delivery latency</h2>
<svg xmlns="http://www.w3.org/2000/svg" width="{{.Width}}" height="{{.Height}}" viewBox="0 0 {{.Width}} {{.Height}}" role="img" aria-label="delivery latency histogram">
{{range .YTicks}}<line class="grid" x1="{{f $.Chart.Left}}" y1="{{f .Y}}" x2="{{f $.Chart.Right}}" y2="{{f .Y}}"/>
<text x="{{f .LabelX}}" y="{{f .LabelY}}" text-anchor="end">{{.Label}}</text>
{{end}}{{range .Bars}}<rect class="bar" x="{{f .X}}" y="{{f .Y}}" width="{{f .W}}" height="{{f .H}}"><title>{{.Title}}</title></rect>
{{end}}<line class="axis" x1="{{f .Left}}" y1="{{f .Bottom}}" x2="{{f .Right}}" y2="{{f .Bottom}}"/>
<line class="axis" x1="{{f .Left}}" y1="{{f .Top}}" x2="{{f .Left}}" y2="{{f .Bottom}}"/>
{{range .XTicks}}<line class="axis" x1="{{f .X}}" y1="{{f .Y}}" x2="{{f .X}}" y2="{{f .LabelY}}"/>
<text x="{{f .LabelX}}" y="{{f .LabelY}}" dy="13" text-anchor="middle">{{.Label}}</text>
{{end}}{{range .Markers}}<line class="marker" x1="{{f .X}}" y1="{{f $.Chart.Top}}" x2="{{f .X}}" y2="{{f $.Chart.Bottom}}"/>
<line class="marker" x1="{{f .X}}" y1="{{f .LabelY}}" x2="{{f .X}}" y2="{{f $.Chart.Top}}"/>
<text class="mlabel" x="{{f .LabelX}}" y="{{f .LabelY}}" dy="4" text-anchor="{{.Anchor}}">{{.Label}}</text>
{{end}}<text x="{{f .XLabelX}}" y="{{f .XLabelY}}" text-anchor="middle">delivery latency (log scale)</text>
<text x="0" y="0" transform="translate(16 {{f .YLabelMid}}) rotate(-90)" text-anchor="middle">deliveries</text>
</svg>
{{end}}
<details><summary>Raw result (JSON)</summary>
<pre>{{json .R}}</pre>
</details>
</body>
</html>
`
