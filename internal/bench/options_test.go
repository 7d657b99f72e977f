package bench

import (
	"errors"
	"testing"
	"time"
)

func TestValidate(t *testing.T) {
	t.Parallel()
	ok := DefaultOptions()
	ok.Scenario = ScenarioFanout
	if err := ok.Validate(); err != nil {
		t.Fatalf("default fanout options: %v", err)
	}
	for name, mutate := range map[string]func(*Options){
		"scenario":          func(o *Options) { o.Scenario = "bogus" },
		"clients":           func(o *Options) { o.Clients = 0 },
		"no auth":           func(o *Options) { o.InsecureUsers, o.HMACSecret = false, "" },
		"via":               func(o *Options) { o.Via = "carrier pigeon" },
		"batch":             func(o *Options) { o.Batch = 10001 },
		"channel":           func(o *Options) { o.Channel = "bad channel" },
		"server":            func(o *Options) { o.Server = "http://127.0.0.1:7600" },
		"source ips":        func(o *Options) { o.SourceIPs = "nope" },
		"size":              func(o *Options) { o.Size = -1 },
		"user prefix":       func(o *Options) { o.UserPrefix = "a b" },
		"publishers":        func(o *Options) { o.Publishers, o.Via = 2, ViaAPI },
		"rounds":            func(o *Options) { o.Rounds = o.Messages + 1 },
		"stalled rounds":    func(o *Options) { o.Stalled, o.Rounds = 10, 2 },
		"baseline scenario": func(o *Options) { o.Scenario, o.BaselineChannel = ScenarioIdle, "plain:x" },
		"baseline channel":  func(o *Options) { o.BaselineChannel = "bad channel" },
		"baseline server":   func(o *Options) { o.BaselineServer = "http://127.0.0.1:7600" },
		"baseline stalled":  func(o *Options) { o.Stalled, o.BaselineChannel = 10, "plain:x" },
		"offline no hooks":  func(o *Options) { o.Scenario = ScenarioOffline },
		"hook receiver":     func(o *Options) { o.HookReceiver = "7700" },
		"hook delay":        func(o *Options) { o.HookReceiver, o.HookDelay = "127.0.0.1:7700", -time.Second },
	} {
		o := ok
		mutate(&o)
		if err := o.Validate(); !errors.Is(err, ErrInvalidOptions) {
			t.Errorf("%s: Validate = %v, want ErrInvalidOptions", name, err)
		}
	}
	compared := ok
	compared.BaselineServer = "ws://127.0.0.1:7700/ws"
	compared = compared.withDefaults()
	if compared.Rounds != defaultBaselineRounds {
		t.Errorf("rounds with a baseline = %d, want %d", compared.Rounds, defaultBaselineRounds)
	}
	if b := compared.baseline(); b.Server != "ws://127.0.0.1:7700/ws" || b.API != compared.API || b.UserPrefix != compared.UserPrefix || b.hasBaseline() {
		t.Errorf("baseline options: %+v", b)
	}
	compared.BaselineServer, compared.BaselineChannel = "", "plain:x"
	if b := compared.baseline(); b.Channel != "plain:x" || b.UserPrefix == compared.UserPrefix {
		t.Errorf("baseline on the same server: channel %q, users %q", b.Channel, b.UserPrefix)
	}
	churn := DefaultOptions().withDefaults()
	churn.Scenario = ScenarioChurn
	if churn.withDefaults().Rate != DefaultChurnRate {
		t.Errorf("churn rate default = %v", churn.withDefaults().Rate)
	}
}
