// JSON and record handling on the ingest and delivery paths: parsing a ~1 KiB POST /v1/events
// body with nlohmann (relay/api/request_parsing.h) or with the ingest path's parse_event_body,
// re-serialising the payload, and encoding/decoding the stored records (storage/records.h,
// a binary layout). Baselines: validating the same body without building a DOM (json::accept),
// and copying it, the floors for the parse.

#include <benchmark/benchmark.h>

#include <string>

#include "relay/api/event_parsing.h"
#include "benchmarks/micro/event_payload.h"
#include "relay/api/api_json.h"
#include "relay/api/request_parsing.h"
#include "storage/records.h"

namespace relay {
namespace {

using bench::event_body;

HttpRequest post_request(const std::string& body = event_body()) {
  HttpRequest request{boost::beast::http::verb::post, "/v1/events", 11};
  request.set(boost::beast::http::field::content_type, "application/json");
  request.body() = body;
  request.prepare_payload();
  return request;
}

// The same event as a client that pretty-prints its JSON sends it (the payload must be compacted).
const std::string& pretty_event_body() {
  static const std::string body = nlohmann::json::parse(event_body()).dump(2);
  return body;
}

Event sample_event() {
  Event event;
  event.id = "evt_0195f3a2b4c10000abcd000000000001";
  event.type = "meeting.completed";
  event.payload = std::make_shared<const std::string>(nlohmann::json::parse(event_body())["payload"].dump());
  event.created_at = 1'767'225'600'000;
  return event;
}

Delivery sample_delivery() {
  Delivery d;
  d.id = "dlv_0195f3a2b4c10000abcd000000000002";
  d.event_id = "evt_0195f3a2b4c10000abcd000000000001";
  d.subscription_id = "sub_0195f3a2b4c10000abcd000000000003";
  d.event_type = "meeting.completed";
  d.created_at = 1'767'225'600'000;
  d.next_attempt_at = d.created_at + 5'000;
  d.window_start = d.created_at;
  d.attempts = 1;
  d.last_error = "http_5xx";
  return d;
}

void BM_Baseline_CopyBody(benchmark::State& state) {
  const std::string& body = event_body();
  for (auto _ : state) {
    std::string copy = body;
    benchmark::DoNotOptimize(copy);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * body.size()));
}
BENCHMARK(BM_Baseline_CopyBody);

void BM_Baseline_JsonAccept(benchmark::State& state) {
  const std::string& body = event_body();
  for (auto _ : state) benchmark::DoNotOptimize(nlohmann::json::accept(body));
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * body.size()));
}
BENCHMARK(BM_Baseline_JsonAccept);

void BM_JsonParse1K(benchmark::State& state) {
  const std::string& body = event_body();
  for (auto _ : state) {
    auto j = nlohmann::json::parse(body, nullptr, false);
    benchmark::DoNotOptimize(j);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * body.size()));
}
BENCHMARK(BM_JsonParse1K);

// What publish_event does with the body before it reaches the writer thread: parse, validate,
// and dump the payload back to compact text.
void BM_ParseEventRequest(benchmark::State& state) {
  const HttpRequest request = post_request();
  for (auto _ : state) {
    auto body = parse_json_object(request);
    auto event = parse_new_event(*body, "");
    benchmark::DoNotOptimize(event);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * event_body().size()));
}
BENCHMARK(BM_ParseEventRequest);

// The ingest hot path: what publish_event does with the body (relay/api/event_parsing.h).
void BM_ParseEventBody(benchmark::State& state) {
  const HttpRequest request = post_request();
  for (auto _ : state) {
    auto event = parse_event_body(request, "");
    benchmark::DoNotOptimize(event);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * request.body().size()));
}
BENCHMARK(BM_ParseEventBody);

void BM_ParseEventBodyPretty(benchmark::State& state) {
  const HttpRequest request = post_request(pretty_event_body());
  for (auto _ : state) {
    auto event = parse_event_body(request, "");
    benchmark::DoNotOptimize(event);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * request.body().size()));
}
BENCHMARK(BM_ParseEventBodyPretty);

void BM_PayloadDump(benchmark::State& state) {
  const auto payload = nlohmann::json::parse(event_body())["payload"];
  for (auto _ : state) {
    std::string text = payload.dump();
    benchmark::DoNotOptimize(text);
  }
}
BENCHMARK(BM_PayloadDump);

void BM_EncodeEventRecord(benchmark::State& state) {
  const Event event = sample_event();
  for (auto _ : state) {
    std::string bytes = records::encode_record(event);
    benchmark::DoNotOptimize(bytes);
  }
}
BENCHMARK(BM_EncodeEventRecord);

void BM_DecodeEventRecord(benchmark::State& state) {
  const std::string bytes = records::encode_record(sample_event());
  for (auto _ : state) {
    auto event = records::decode_event(bytes);
    benchmark::DoNotOptimize(event);
  }
}
BENCHMARK(BM_DecodeEventRecord);

void BM_EncodeDeliveryRecord(benchmark::State& state) {
  const Delivery delivery = sample_delivery();
  for (auto _ : state) {
    std::string bytes = records::encode_record(delivery);
    benchmark::DoNotOptimize(bytes);
  }
}
BENCHMARK(BM_EncodeDeliveryRecord);

void BM_DecodeDeliveryRecord(benchmark::State& state) {
  const std::string bytes = records::encode_record(sample_delivery());
  for (auto _ : state) {
    auto delivery = records::decode_delivery(bytes);
    benchmark::DoNotOptimize(delivery);
  }
}
BENCHMARK(BM_DecodeDeliveryRecord);

void BM_DeliveryApiJson(benchmark::State& state) {
  const Delivery delivery = sample_delivery();
  for (auto _ : state) {
    std::string text = to_api(delivery).dump();
    benchmark::DoNotOptimize(text);
  }
}
BENCHMARK(BM_DeliveryApiJson);

}  // namespace
}  // namespace relay
