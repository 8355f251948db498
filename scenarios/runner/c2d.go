package runner

import (
	"context"
	"fmt"
	"time"

	"github.com/fleetsim/fleetsim/hubjobs"
	"github.com/fleetsim/fleetsim/hubjobs/restapi"
	"github.com/fleetsim/fleetsim/internal/iothub"
	"github.com/fleetsim/fleetsim/scenarios"
)

// c2dMessage is a timeline's cloud-to-device message.
type c2dMessage struct {
	data       string
	properties []iothub.Property
	ttl        time.Duration
}

func (t stackTarget) sendC2D(_ context.Context, id string, m c2dMessage) error {
	return t.st.SendC2D(id, hubjobs.C2DMessage{Body: []byte(m.data), Properties: m.properties, TTL: m.ttl})
}

// sendC2D sends through fleetsim's own endpoint: a real IoT hub answers it
// with an error, as it takes these messages over AMQP only.
func (t *restTarget) sendC2D(ctx context.Context, id string, m c2dMessage) error {
	body := restapi.C2DMessage{Data: m.data, TTLSeconds: int64(m.ttl / time.Second)}
	if len(m.properties) > 0 {
		body.Properties = map[string]string{}
		for _, p := range m.properties {
			body.Properties[p.Key] = p.Value
		}
	}
	_, err := t.c.SendC2D(ctx, id, body)
	return err
}

// sendC2D sends the action's message to the selected devices of this
// shard, and says how it went for the progress line.
func (p *player) sendC2D(ctx context.Context, a scenarios.C2DAction) string {
	m := c2dMessage{data: a.Data, properties: a.Properties, ttl: a.TTL}
	sent, refused := 0, 0
	var first error
	for d := range p.sc.DeviceSpecs(p.shard, p.shards) {
		if !a.Selects(p.sc.Seed, d) {
			continue
		}
		if err := p.hub.sendC2D(ctx, d.ID, m); err != nil {
			refused++
			if first == nil {
				first = err
			}
			continue
		}
		sent++
	}
	if refused > 0 {
		p.log.Warn().Err(first).Int("refused", refused).Msg("cloud-to-device messages refused")
		return fmt.Sprintf(": %d sent, %d refused (%v)", sent, refused, first)
	}
	return fmt.Sprintf(": %d sent", sent)
}
