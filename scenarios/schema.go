package scenarios

// The schema of a scenario file, as plain structs. The yaml tag names a key,
// required:"true" makes it mandatory, and doc is its description in the
// generated JSON Schema (scenario.schema.json). Defaults are applied after
// decoding (see applyDefaults) and written in each doc.

// File is a scenario file as written.
type File struct {
	Name        string        `yaml:"name" required:"true" doc:"Short name of the scenario, shown in reports."`
	Description string        `yaml:"description" doc:"What the scenario shows, in a sentence or two."`
	Seed        *int64        `yaml:"seed" doc:"Seed of every random choice (tags, latencies, failures); the same seed replays the same run. Default 1; fleetsim run --seed overrides it."`
	Duration    Duration      `yaml:"duration" required:"true" doc:"Longest run time. A run ends earlier once it has settled: every timeline action is done, every job is terminal, and the device-side work the jobs started has finished (acknowledgements of desired changes answered by the hub, firmware updates at a final state and reported, rebooted devices back). The report says whether the run settled or the duration ended it."`
	Hub         HubSpec       `yaml:"hub" doc:"How the simulated hub executes jobs."`
	Devices     []*GroupSpec  `yaml:"devices" required:"true" doc:"Device groups; devices are numbered across groups in file order."`
	Timeline    []*ActionSpec `yaml:"timeline" doc:"Actions at offsets from the start of the run."`
	Expect      []*ExpectSpec `yaml:"expect" doc:"Expectations judged at the end of the run; any failure makes fleetsim exit non-zero."`
}

// HubSpec configures the hub's job execution.
type HubSpec struct {
	Pacing      string `yaml:"pacing" pattern:"^([Uu][Nn][Ll][Ii][Mm][Ii][Tt][Ee][Dd]|[Ss][123]([Xx][1-9][0-9]{0,3})?)$" doc:"Jobs device-operation throttle: unlimited (default), or an IoT Hub tier S1 (10 operations/s, one job at a time), S2 or S3, optionally with a unit count, e.g. S3x2."`
	MaxInFlight int    `yaml:"maxInFlight" bounds:"nonnegative" doc:"Most device operations a job runs at once; 0 (default) lets the jobs engine choose."`
}

// GroupSpec is a group of devices that share an id pattern, tag rules and a
// behaviour.
type GroupSpec struct {
	Name      string              `yaml:"name" doc:"Label of the group in reports; default group1, group2, ..."`
	Count     int                 `yaml:"count" bounds:"positive" required:"true" doc:"Number of devices in the group."`
	IDPattern string              `yaml:"idPattern" required:"true" doc:"Device id pattern; {index} is replaced by the device's index within the group, {index:05} pads it with zeros to 5 digits."`
	IndexFrom int                 `yaml:"indexFrom" bounds:"nonnegative" doc:"Index of the group's first device: 0 (default) or any non-negative number, e.g. 1."`
	Tags      map[string]*TagSpec `yaml:"tags" doc:"Twin tags of every device. A value is a constant, a list (values dealt round robin by device index), lo..hi (an integer drawn per device from the seed), {$random: [...]} (a value drawn per device) or {$weighted: {value: weight}} (drawn by weight); mappings nest."`
	Behavior  BehaviorSpec        `yaml:"behavior" doc:"What the devices do."`
	Auth      *AuthSpec           `yaml:"auth" doc:"How the devices authenticate; default SAS keys the run makes."`
}

// AuthSpec is how a group's devices authenticate to the hub.
type AuthSpec struct {
	Type string `yaml:"type" required:"true" enum:"sas,selfSigned,certificateAuthority" doc:"sas (default: symmetric keys), selfSigned (an X.509 certificate per device, registered by its thumbprints) or certificateAuthority (an X.509 certificate per device with CN = device id, signed by the run's CA, which the hub must trust)."`
}

// BehaviorSpec is what a group's devices do besides speaking MQTT.
type BehaviorSpec struct {
	Methods        map[string]*MethodSpec `yaml:"methods" doc:"Direct-method handlers by method name; \"*\" answers any other name. Without a handler a device does not answer and the hub times out."`
	Reboot         *RebootSpec            `yaml:"reboot" doc:"Built-in handler of the reboot method: answer, go offline, come back."`
	FirmwareUpdate *FirmwareSpec          `yaml:"firmwareUpdate" doc:"Built-in handler of the firmwareUpdate method: download, verify, apply, reboot, reporting progress in reported.firmware."`
	Desired        *DesiredSpec           `yaml:"desired" doc:"How devices acknowledge desired-property changes."`
	Connectivity   ConnectivitySpec       `yaml:"connectivity" doc:"How connections come and go."`
	Telemetry      *TelemetrySpec         `yaml:"telemetry" doc:"Periodic device-to-cloud messages."`
	C2D            *C2DSpec               `yaml:"c2d" doc:"Take cloud-to-device messages (subscribe to devices/{id}/messages/devicebound/#) and react to them. Without it devices do not subscribe, and messages wait for them on the hub."`
	Reported       map[string]any         `yaml:"reported" doc:"Reported properties sent once after the first connect."`
}

// MethodSpec is how devices answer one direct method.
type MethodSpec struct {
	Latency         *Distribution   `yaml:"latency" doc:"Time from request to answer; default 0."`
	Statuses        map[int]float64 `yaml:"statuses" doc:"Mix of answered status codes with their probabilities, summing to 1, e.g. {200: 0.95, 500: 0.05}; default 200."`
	Payload         any             `yaml:"payload" doc:"Answered payload (any YAML value, sent as JSON). Strings may contain {{deviceId}}, {{method}} and {{status}}."`
	PayloadTemplate string          `yaml:"payloadTemplate" doc:"Answered payload as JSON text with placeholders {{deviceId}}, {{method}}, {{status}} and {{requestPayload}} (raw JSON); instead of payload."`
	NoAnswer        float64         `yaml:"noAnswer" bounds:"probability" doc:"Probability that a device never answers (the hub times out)."`
	Disconnect      float64         `yaml:"disconnect" bounds:"probability" doc:"Probability that a device drops its connection instead of answering."`
}

// RebootSpec configures the built-in reboot method.
type RebootSpec struct {
	Status           int           `yaml:"status" doc:"Status answered before going down; default 200."`
	Latency          *Distribution `yaml:"latency" doc:"Time before the answer."`
	Payload          any           `yaml:"payload" doc:"Answered payload."`
	Delay            *Distribution `yaml:"delay" doc:"Time between the answer and dropping the connection; default at once."`
	Offline          *Distribution `yaml:"offline" required:"true" doc:"How long a device stays offline before reconnecting."`
	ReportLastReboot bool          `yaml:"reportLastReboot" doc:"Report {lastReboot: time} after coming back."`
}

// FirmwareSpec configures the built-in firmwareUpdate method.
type FirmwareSpec struct {
	Status         int              `yaml:"status" doc:"Status answered when an update is accepted; default 200."`
	Latency        *Distribution    `yaml:"latency" doc:"Time before the answer."`
	InitialVersion string           `yaml:"initialVersion" doc:"Version reported before any update; default 1.0.0."`
	Download       *Distribution    `yaml:"download" doc:"Duration of the download phase."`
	Verify         *Distribution    `yaml:"verify" doc:"Duration of the verify phase."`
	Apply          *Distribution    `yaml:"apply" doc:"Duration of the apply phase."`
	Reboot         *Distribution    `yaml:"reboot" doc:"Time offline while rebooting into the new image."`
	ProgressSteps  int              `yaml:"progressSteps" bounds:"nonnegative" doc:"Progress reports during the download; default 4."`
	Fail           FirmwareFailures `yaml:"fail" doc:"Probability that each phase fails."`
	Rollback       bool             `yaml:"rollback" doc:"After a failure in apply or reboot, roll back to the old version."`
	RollbackTime   *Distribution    `yaml:"rollbackTime" doc:"Duration of a rollback."`
}

// FirmwareFailures are per-phase failure probabilities.
type FirmwareFailures struct {
	Download float64 `yaml:"download" bounds:"probability" doc:"Probability that the download fails."`
	Verify   float64 `yaml:"verify" bounds:"probability" doc:"Probability that verification fails."`
	Apply    float64 `yaml:"apply" bounds:"probability" doc:"Probability that applying fails."`
	Reboot   float64 `yaml:"reboot" bounds:"probability" doc:"Probability that the reboot into the new image fails."`
}

// DesiredSpec configures desired-property acknowledgements.
type DesiredSpec struct {
	Format string        `yaml:"format" enum:"value,pnp,none" doc:"Acknowledgement form in reported: value (default, {key: {value, ackVersion, status}}), pnp (IoT Plug and Play {value, ac, av, ad}) or none."`
	Delay  *Distribution `yaml:"delay" doc:"Time before a change is acknowledged."`
	Fail   float64       `yaml:"fail" bounds:"probability" doc:"Probability that the acknowledgement reports failure."`
	NoAck  float64       `yaml:"noAck" bounds:"probability" doc:"Probability that a change is applied but never acknowledged."`
}

// ConnectivitySpec configures connections.
type ConnectivitySpec struct {
	StartSpread    Duration      `yaml:"startSpread" doc:"First connects are spread over this long; default 0 (all at once)."`
	OfflineAtStart float64       `yaml:"offlineAtStart" bounds:"probability" doc:"Fraction of devices that do not connect at start."`
	OfflineFor     *Distribution `yaml:"offlineFor" doc:"How long those devices stay away; default the whole run."`
	Flapping       *FlappingSpec `yaml:"flapping" doc:"Unreliable links: drop after an up-time, return after a down-time."`
	TokenLifetime  Duration      `yaml:"tokenLifetime" doc:"SAS token lifetime; devices reconnect with a new token before it ends. Default 1h."`
	KeepAlive      KeepAlive     `yaml:"keepAlive" doc:"MQTT keep-alive, or off (saves a goroutine per device in large fleets); default 180s."`
	Subscribe      string        `yaml:"subscribe" enum:"noSession,always,nodeSDK" doc:"When devices subscribe: noSession (default: when the broker has no session), always, or nodeSDK (as the Node device SDK)."`
}

// FlappingSpec is an unreliable link.
type FlappingSpec struct {
	MTBF *Distribution `yaml:"mtbf" required:"true" doc:"Connected time before a drop, e.g. {exponential: 5m}."`
	MTTR *Distribution `yaml:"mttr" required:"true" doc:"Offline time before reconnecting."`
}

// TelemetrySpec configures device-to-cloud messages.
type TelemetrySpec struct {
	Interval *Distribution `yaml:"interval" required:"true" doc:"Time between messages."`
	Size     int           `yaml:"size" bounds:"nonnegative" doc:"Approximate message size in bytes; default 100."`
	QoS      *int          `yaml:"qos" enum:"0,1" doc:"MQTT QoS, 0 or 1 (default 1, as the Node SDK)."`
	// The payload template (scenarios/telemetry.go).
	Fields          []TelemetryField  `yaml:"fields" doc:"A payload template: the fields of each message's JSON object, in order, each with its generator. Without it messages are padding of the given size."`
	ContentType     string            `yaml:"contentType" doc:"The messages' content type ($.ct); default application/json with fields, none without."`
	ContentEncoding string            `yaml:"contentEncoding" doc:"The messages' content encoding ($.ce); default utf-8 with fields, none without."`
	Properties      map[string]string `yaml:"properties" doc:"Application properties of every message, sent in the topic's property bag."`
}

// C2DSpec is how devices react to cloud-to-device messages.
type C2DSpec struct {
	Reaction string        `yaml:"reaction" enum:"acknowledge,ignore,reboot,report" doc:"acknowledge (default): PUBACK, which completes the message; ignore: never PUBACK, so the hub sends it again on the next connection; reboot: PUBACK, then go offline for offline and come back; report: PUBACK and report {lastC2D: {messageId, receivedAt}}."`
	Offline  *Distribution `yaml:"offline" doc:"Time offline of the reboot reaction; default 5s."`
}

// C2DActionSpec sends a cloud-to-device message to the selected devices.
type C2DActionSpec struct {
	Condition  string            `yaml:"condition" required:"true" doc:"Query condition on deviceId and tags selecting the devices, or \"*\" for all (quote it)."`
	Fraction   *float64          `yaml:"fraction" bounds:"probability" doc:"Fraction of the matching devices, picked by the seed; default 1."`
	Data       string            `yaml:"data" doc:"The message body, as text."`
	Properties map[string]string `yaml:"properties" doc:"Application properties, sent in name order."`
	TTL        Duration          `yaml:"ttl" doc:"Time to live, whole seconds up to 48h; default the hub's (1h)."`
}

// ActionSpec is one timeline entry: exactly one of job, cancel, disconnect,
// connectStorm, rollout and c2d.
type ActionSpec struct {
	At           Duration        `yaml:"at" required:"true" doc:"Offset from the start of the run."`
	Job          *JobSpec        `yaml:"job" doc:"Create a Jobs v2 job: a method job (method) or a twin job (twin)."`
	Cancel       string          `yaml:"cancel" doc:"Cancel the job with this id, created earlier in the timeline."`
	Disconnect   *DisconnectSpec `yaml:"disconnect" doc:"A disconnect wave: the selected devices drop their connections and stay away for a while."`
	ConnectStorm *StormSpec      `yaml:"connectStorm" doc:"A connect storm: the selected devices drop and all reconnect at once."`
	Rollout      *RolloutPlan    `yaml:"rollout" doc:"Start a rollout: staged jobs with gates, an abort rule, retries and a rollback (the plan format of fleetsim rollout run)."`
	C2D          *C2DActionSpec  `yaml:"c2d" doc:"Send a cloud-to-device message to the selected devices (a fleetsim hub only: IoT Hub takes these over AMQP)."`
}

// JobSpec describes a job to create.
type JobSpec struct {
	ID               string         `yaml:"id" required:"true" doc:"Job id: up to 64 letters, digits and '-'."`
	Method           string         `yaml:"method" doc:"Method name of a method job (scheduleDeviceMethod)."`
	Payload          any            `yaml:"payload" doc:"Method payload (any YAML value, sent as JSON)."`
	Twin             *TwinPatchSpec `yaml:"twin" doc:"Patch of a twin job (scheduleUpdateTwin)."`
	Condition        string         `yaml:"condition" required:"true" doc:"Query condition selecting the devices, as in IoT Hub's queryCondition: e.g. \"tags.building = 43\", or \"*\" for all devices (quote it)."`
	ResponseTimeout  Duration       `yaml:"responseTimeout" doc:"Method response timeout, 5s..300s; default 30s."`
	ConnectTimeout   Duration       `yaml:"connectTimeout" doc:"How long the hub waits for an offline device to connect, 0..300s; default 0."`
	StartIn          Duration       `yaml:"startIn" doc:"Start time of the job relative to the action; default 0 (at once)."`
	MaxExecutionTime Duration       `yaml:"maxExecutionTime" doc:"maxExecutionTimeInSeconds of the job; default 1h."`
	PinID            bool           `yaml:"pinId" doc:"Keep the job id as written on a remote hub; by default a run against a remote hub appends its run's suffix, so re-runs never collide."`
}

// TwinPatchSpec is the patch a twin job applies.
type TwinPatchSpec struct {
	Tags    map[string]any `yaml:"tags" doc:"Tags to set (null deletes)."`
	Desired map[string]any `yaml:"desired" doc:"Desired properties to set (null deletes)."`
}

// DisconnectSpec selects devices for a disconnect wave.
type DisconnectSpec struct {
	Fraction  *float64      `yaml:"fraction" bounds:"probability" doc:"Fraction of the devices (of those matching condition, if given) picked by the seed; default 1."`
	Condition string        `yaml:"condition" doc:"Query condition on deviceId and tags selecting the devices."`
	For       *Distribution `yaml:"for" required:"true" doc:"How long each device stays offline."`
}

// StormSpec selects devices for a connect storm.
type StormSpec struct {
	Fraction  *float64 `yaml:"fraction" bounds:"probability" doc:"Fraction of the devices (of those matching condition, if given) picked by the seed; default 1."`
	Condition string   `yaml:"condition" doc:"Query condition on deviceId and tags selecting the devices."`
	Within    Duration `yaml:"within" doc:"Reconnects are spread over this long; default 0 (all at once)."`
}

// ExpectSpec is one expectation: about a job (job and at least one check),
// or about the fleet (minConnected).
type ExpectSpec struct {
	Job            string             `yaml:"job" doc:"Job the checks below are about."`
	Status         string             `yaml:"status" enum:"completed,failed,cancelled" doc:"Final job status: completed, failed or cancelled."`
	Within         Duration           `yaml:"within" doc:"The job reaches a terminal status within this long of its start."`
	MinSuccessRate *float64           `yaml:"minSuccessRate" bounds:"probability" doc:"Least fraction of the job's devices that succeed (0..1)."`
	TakesAtLeast   Duration           `yaml:"takesAtLeast" doc:"The job runs at least this long from start to terminal status (shows pacing)."`
	MaxP99Latency  Duration           `yaml:"maxP99Latency" doc:"Highest 99th percentile of per-device operation time."`
	MinSucceeded   *int               `yaml:"minSucceeded" bounds:"nonnegative" doc:"Least number of devices that succeed."`
	MaxFailed      *int               `yaml:"maxFailed" bounds:"nonnegative" doc:"Most devices that fail."`
	MinDevices     *int               `yaml:"minDevices" bounds:"nonnegative" doc:"Least number of devices the job selects."`
	MinConnected   *float64           `yaml:"minConnected" bounds:"probability" doc:"Fleet expectation: least fraction of this process's devices connected at the end of the run (0..1)."`
	MinAckRate     *float64           `yaml:"minAckRate" bounds:"probability" doc:"Twin job: least fraction of the job's succeeded devices whose acknowledgement of the desired change the hub accepted, measured at the devices (0..1)."`
	MaxAckP99      Duration           `yaml:"maxAckP99Latency" doc:"Twin job: highest 99th percentile of acknowledgement latency, from a device receiving the desired change to the hub answering its reported acknowledgement."`
	MaxPhaseFails  *PhaseBudgetSpec   `yaml:"maxPhaseFailures" doc:"firmwareUpdate job: failure budget per firmware phase, measured at the devices."`
	MaxRollbacks   *int               `yaml:"maxRollbacks" bounds:"nonnegative" doc:"firmwareUpdate job: most updates that roll back."`
	Rollout        *RolloutExpectSpec `yaml:"rollout" doc:"Expectation on a rollout of the timeline: its outcome, where it aborted, how many devices it touched."`
	DeviceState    *DeviceStateSpec   `yaml:"deviceState" doc:"Expectation on the devices' twins, judged with IoT Hub queries (so it holds the same against fleetsim serve and a real IoT hub). With job, within counts from the job's start; without, from the start of the run."`
}

// PhaseBudgetSpec is the most failures allowed in each firmware phase.
type PhaseBudgetSpec struct {
	Download *int `yaml:"download" bounds:"nonnegative" doc:"Most updates whose download fails."`
	Verify   *int `yaml:"verify" bounds:"nonnegative" doc:"Most updates whose verification fails."`
	Apply    *int `yaml:"apply" bounds:"nonnegative" doc:"Most updates whose apply phase fails."`
	Reboot   *int `yaml:"reboot" bounds:"nonnegative" doc:"Most updates whose reboot into the new image fails."`
}

// DeviceStateSpec demands that enough of the selected devices' twins match
// a condition in time.
type DeviceStateSpec struct {
	Devices     string   `yaml:"devices" required:"true" doc:"Query condition selecting the devices, as in a job's condition, e.g. \"tags.ring = 'broad'\" or \"*\"."`
	Match       string   `yaml:"match" required:"true" doc:"Query condition those devices' twins must meet, e.g. \"properties.reported.firmware.currentVersion = '2.0.0'\"."`
	MinFraction *float64 `yaml:"minFraction" bounds:"probability" doc:"Least fraction of the selected devices that match (0..1); default 1."`
	Within      Duration `yaml:"within" doc:"The fraction is reached within this long of the job's start (or the run's); default: by the end of the run."`
	MinDevices  *int     `yaml:"minDevices" bounds:"nonnegative" doc:"Least number of devices the devices condition selects; default 1."`
}
