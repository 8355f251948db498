package devicesim

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// EventKind says what happened to a device.
type EventKind int

// Event kinds.
const (
	EventConnected        EventKind = iota + 1 // CONNACK accepted; Detail "session" when a session was present
	EventConnectFailed                         // dial or CONNECT failed; Detail has the error
	EventDisconnected                          // connection ended; Detail: stop, renewal, reboot, flap, lost, crash
	EventTokenRenewed                          // reconnecting with a new SAS token
	EventMethodCalled                          // a direct-method request arrived
	EventMethodAnswered                        // the device answered; Status is the device's status
	EventMethodUnanswered                      // the device chose not to answer, or the answer was abandoned by a disconnect
	EventTwinReceived                          // the twin GET answer arrived
	EventDesiredReceived                       // a desired-property patch arrived; Status is its $version
	EventReportedSent                          // a reported patch was published
	EventReportedAcked                         // the hub answered a reported patch; Status is the hub's status
	EventReportedFailed                        // a reported patch timed out or was refused
	EventFirmwarePhase                         // the firmware state machine changed phase; Detail is the phase
	EventReboot                                // the device goes down for a reboot
	EventTelemetrySent                         // a telemetry message was published
)

var eventNames = [...]string{
	EventConnected:        "connected",
	EventConnectFailed:    "connect-failed",
	EventDisconnected:     "disconnected",
	EventTokenRenewed:     "token-renewed",
	EventMethodCalled:     "method-called",
	EventMethodAnswered:   "method-answered",
	EventMethodUnanswered: "method-unanswered",
	EventTwinReceived:     "twin-received",
	EventDesiredReceived:  "desired-received",
	EventReportedSent:     "reported-sent",
	EventReportedAcked:    "reported-acked",
	EventReportedFailed:   "reported-failed",
	EventFirmwarePhase:    "firmware-phase",
	EventReboot:           "reboot",
	EventTelemetrySent:    "telemetry-sent",
}

// String names the kind.
func (k EventKind) String() string {
	if k > 0 && int(k) < len(eventNames) {
		return eventNames[k]
	}
	return "unknown"
}

// Event is one thing that happened to a device, sent on DeviceConfig.Events
// without blocking (a full channel drops the event and counts it).
type Event struct {
	Time     time.Time
	DeviceID string
	Kind     EventKind
	Method   string
	Status   int
	Detail   string
}

// Counters are what a device (or, summed, a fleet) did.
type Counters struct {
	Connects          int64 // accepted CONNACKs
	ConnectFailures   int64 // failed dials or refused CONNECTs
	Disconnects       int64 // connections that ended, for any reason
	TokenRenewals     int64
	MethodCalls       int64 // requests received
	MethodAnswers     int64 // answers published
	MethodsUnanswered int64 // no answer by choice, by disconnect or by a full queue
	MethodsByStatus   map[int]int64
	TwinGets          int64 // twin GET answers received
	DesiredPatches    int64 // desired patches received and applied
	ReportedSent      int64
	ReportedAcked     int64
	ReportedFailed    int64 // timed out or refused
	Reboots           int64
	FirmwareUpdates   int64 // updates that reached the new version
	FirmwareFailures  int64 // updates that failed or rolled back
	// FirmwareFailedIn counts failed updates by the phase that failed.
	FirmwareFailedIn  map[FirmwarePhase]int64
	FirmwareRollbacks int64 // failed updates that rolled back to the old version
	TwinAcks          int64 // desired changes acknowledged in a reported patch the hub accepted
	TwinAckFailures   int64 // acknowledgements whose reported patch the hub refused or never answered
	RebootsBack       int64 // reboots after which the device connected again
	TelemetrySent     int64
	C2DReceived       int64 // cloud-to-device messages received
	C2DAcked          int64 // cloud-to-device messages acknowledged (PUBACK)
	QueueDropped      int64 // inbound messages dropped because the device's queue was full
	EventsDropped     int64 // events dropped because DeviceConfig.Events was full

	// TwinAcksNotApplied counts the TwinAcks that report the device failed
	// to apply the change (status "failed", or ac 500).
	TwinAcksNotApplied int64
}

// add sums o into c.
func (c *Counters) add(o Counters) {
	c.Connects += o.Connects
	c.ConnectFailures += o.ConnectFailures
	c.Disconnects += o.Disconnects
	c.TokenRenewals += o.TokenRenewals
	c.MethodCalls += o.MethodCalls
	c.MethodAnswers += o.MethodAnswers
	c.MethodsUnanswered += o.MethodsUnanswered
	c.TwinGets += o.TwinGets
	c.DesiredPatches += o.DesiredPatches
	c.ReportedSent += o.ReportedSent
	c.ReportedAcked += o.ReportedAcked
	c.ReportedFailed += o.ReportedFailed
	c.Reboots += o.Reboots
	c.FirmwareUpdates += o.FirmwareUpdates
	c.FirmwareFailures += o.FirmwareFailures
	c.TelemetrySent += o.TelemetrySent
	c.C2DReceived += o.C2DReceived
	c.C2DAcked += o.C2DAcked
	c.FirmwareRollbacks += o.FirmwareRollbacks
	c.TwinAcks += o.TwinAcks
	c.TwinAckFailures += o.TwinAckFailures
	c.TwinAcksNotApplied += o.TwinAcksNotApplied
	c.RebootsBack += o.RebootsBack
	for ph, n := range o.FirmwareFailedIn {
		if c.FirmwareFailedIn == nil {
			c.FirmwareFailedIn = map[FirmwarePhase]int64{}
		}
		c.FirmwareFailedIn[ph] += n
	}
	c.QueueDropped += o.QueueDropped
	c.EventsDropped += o.EventsDropped
	for s, n := range o.MethodsByStatus {
		if c.MethodsByStatus == nil {
			c.MethodsByStatus = map[int]int64{}
		}
		c.MethodsByStatus[s] += n
	}
}

// DeviceStats is a snapshot of one device.
type DeviceStats struct {
	DeviceID  string
	Connected bool
	Counters
}

// FleetStats is a snapshot of a fleet.
type FleetStats struct {
	Devices   int // devices started
	Connected int // devices connected now
	Counters
}

// counters are a device's live statistics: atomics, so Stats never waits for
// the device.
type counters struct {
	connects, connectFailures, disconnects, tokenRenewals    atomic.Int64
	methodCalls, methodAnswers, methodsUnanswered, twinGets  atomic.Int64
	desiredPatches, reportedSent, reportedAcked              atomic.Int64
	reportedFailed, reboots, firmwareUpdates                 atomic.Int64
	firmwareFailures, telemetrySent, queueDropped, evDropped atomic.Int64
	fwRollbacks, twinAcks, twinAckFailures, rebootsBack      atomic.Int64
	fwFailedIn                                               [4]atomic.Int64 // by FirmwarePhases index
	twinAcksNotApplied                                       atomic.Int64
	c2dReceived, c2dAcked                                    atomic.Int64

	statusMu sync.Mutex
	byStatus []statusCount // usually one or two entries
}

type statusCount struct {
	status int
	n      int64
}

func (c *counters) countStatus(status int) {
	c.statusMu.Lock()
	defer c.statusMu.Unlock()
	for i := range c.byStatus {
		if c.byStatus[i].status == status {
			c.byStatus[i].n++
			return
		}
	}
	c.byStatus = append(c.byStatus, statusCount{status, 1})
}

func (c *counters) snapshot() Counters {
	s := Counters{
		Connects:          c.connects.Load(),
		ConnectFailures:   c.connectFailures.Load(),
		Disconnects:       c.disconnects.Load(),
		TokenRenewals:     c.tokenRenewals.Load(),
		MethodCalls:       c.methodCalls.Load(),
		MethodAnswers:     c.methodAnswers.Load(),
		MethodsUnanswered: c.methodsUnanswered.Load(),
		TwinGets:          c.twinGets.Load(),
		DesiredPatches:    c.desiredPatches.Load(),
		ReportedSent:      c.reportedSent.Load(),
		ReportedAcked:     c.reportedAcked.Load(),
		ReportedFailed:    c.reportedFailed.Load(),
		Reboots:           c.reboots.Load(),
		FirmwareUpdates:   c.firmwareUpdates.Load(),
		FirmwareFailures:  c.firmwareFailures.Load(),
		TelemetrySent:     c.telemetrySent.Load(),
		QueueDropped:      c.queueDropped.Load(),
		EventsDropped:     c.evDropped.Load(),
		FirmwareRollbacks: c.fwRollbacks.Load(),
		TwinAcks:          c.twinAcks.Load(),
		TwinAckFailures:   c.twinAckFailures.Load(),
		RebootsBack:       c.rebootsBack.Load(),
	}
	s.TwinAcksNotApplied = c.twinAcksNotApplied.Load()
	s.C2DReceived, s.C2DAcked = c.c2dReceived.Load(), c.c2dAcked.Load()
	for i := range c.fwFailedIn {
		if n := c.fwFailedIn[i].Load(); n > 0 {
			if s.FirmwareFailedIn == nil {
				s.FirmwareFailedIn = make(map[FirmwarePhase]int64, len(FirmwarePhases))
			}
			s.FirmwareFailedIn[FirmwarePhases[i]] = n
		}
	}
	c.statusMu.Lock()
	if len(c.byStatus) > 0 {
		s.MethodsByStatus = make(map[int]int64, len(c.byStatus))
		for _, sc := range c.byStatus {
			s.MethodsByStatus[sc.status] = sc.n
		}
	}
	c.statusMu.Unlock()
	return s
}

// Statuses returns the status codes in MethodsByStatus in ascending order.
func (c Counters) Statuses() []int {
	out := make([]int, 0, len(c.MethodsByStatus))
	for s := range c.MethodsByStatus {
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}
