package bench

import (
	"errors"
	"testing"
)

func TestValidate(t *testing.T) {
	t.Parallel()
	ok := DefaultOptions()
	ok.Scenario = ScenarioFanout
	if err := ok.Validate(); err != nil {
		t.Fatalf("default fanout options: %v", err)
	}
	for name, mutate := range map[string]func(*Options){
		"scenario":    func(o *Options) { o.Scenario = "bogus" },
		"clients":     func(o *Options) { o.Clients = 0 },
		"no auth":     func(o *Options) { o.InsecureUsers, o.HMACSecret = false, "" },
		"via":         func(o *Options) { o.Via = "carrier pigeon" },
		"batch":       func(o *Options) { o.Batch = 10001 },
		"channel":     func(o *Options) { o.Channel = "bad channel" },
		"server":      func(o *Options) { o.Server = "http://127.0.0.1:7600" },
		"source ips":  func(o *Options) { o.SourceIPs = "nope" },
		"size":        func(o *Options) { o.Size = -1 },
		"user prefix": func(o *Options) { o.UserPrefix = "a b" },
	} {
		o := ok
		mutate(&o)
		if err := o.Validate(); !errors.Is(err, ErrInvalidOptions) {
			t.Errorf("%s: Validate = %v, want ErrInvalidOptions", name, err)
		}
	}
	churn := DefaultOptions().withDefaults()
	churn.Scenario = ScenarioChurn
	if churn.withDefaults().Rate != DefaultChurnRate {
		t.Errorf("churn rate default = %v", churn.withDefaults().Rate)
	}
}
