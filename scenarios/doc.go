// Package scenarios reads fleetsim scenario files: a simulated device
// fleet, a timeline of IoT Hub jobs and disturbances, and the expectations
// that decide a run's exit code. It owns the schema (plain structs with
// defaults, see File), strict decoding with file:line:col problems, the
// validation of everything a run would trip over later, the conversion
// into devicesim behaviours and Jobs v2 requests, and the ready scenarios
// embedded from files/*.yaml (Names, Load).
//
// A small scenario:
//
//	name: demo
//	duration: 1m                # the run ends earlier once all is done
//	hub: {pacing: unlimited}    # or S1, S2, S3, S1x2 ...
//	devices:
//	  - count: 100
//	    idPattern: "dev-{index:03}"   # dev-000 ... dev-099 (index from 0; indexFrom: 1 to start at 1)
//	    tags:
//	      building: [43, 44]    # round robin by index
//	      floor: 1..5           # an integer drawn per device from the seed
//	    behavior:
//	      methods:
//	        reset: {latency: {uniform: [10ms, 200ms]}, statuses: {200: 0.95, 500: 0.05}}
//	timeline:
//	  - at: 5s
//	    job: {id: reset-b43, method: reset, condition: "tags.building = 43"}
//	expect:
//	  - {job: reset-b43, status: completed, within: 30s, minSuccessRate: 0.9}
//
// Decoding walks yaml.v3's node tree by reflection over the schema structs
// (yaml tag: key name; required:"true"; doc: description), so unknown keys
// (with a "did you mean"), wrong types and missing keys are all found in one
// pass and every problem has a position; anchors, aliases and merge keys
// work. Validation then checks values and cross-references: probabilities,
// status mixes, durations, job ids and conditions (hubjobs/query), method
// names, cancels and expectations that name unknown jobs, device id
// patterns that collide. Parse reports all problems at once in a
// *ParseError.
//
// Determinism: a device's tags come from a generator seeded by the
// scenario's Seed and a hash of its id, so Device(i) is the same whichever
// shard, order or process asks; DeviceSpecs(shard, shards) deals device i
// to shard i mod shards.
//
// JSONSchema generates a JSON Schema of the file format from the same
// structs; scenario.schema.json is its committed copy (go test -update
// rewrites it and the golden files), usable from editors with
// "# yaml-language-server: $schema=<path>/scenario.schema.json".
package scenarios
