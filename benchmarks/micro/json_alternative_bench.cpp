// What-if for the ingest path's JSON (see FINDINGS.md): the work of BM_ParseEventRequest (parse the
// 1 KiB body, check `type`, re-serialise `payload` to compact text) done with Boost.JSON, which
// ships with the Boost 1.81 relay already uses (header-only here via <boost/json/src.hpp>), parsing
// into a stack arena so that the DOM costs no malloc and no destructor walk. Not used by relay;
// it measures how much of the ingest CPU a parser change would give back.

#include <benchmark/benchmark.h>

#include <boost/json/monotonic_resource.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/src.hpp>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>

namespace relay {
namespace {

const std::string& event_body() {
  static const std::string body = [] {
    std::ifstream in(RELAY_BENCH_PAYLOAD);
    if (!in) throw std::runtime_error("cannot read " RELAY_BENCH_PAYLOAD);
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
  }();
  return body;
}

void BM_WhatIf_BoostJsonEventRequest(benchmark::State& state) {
  const std::string& body = event_body();
  unsigned char arena[16 << 10];
  for (auto _ : state) {
    boost::json::monotonic_resource memory(arena, sizeof arena);
    boost::system::error_code ec;
    const boost::json::value doc = boost::json::parse(body, ec, &memory);
    const auto* object = doc.if_object();
    if (ec || object == nullptr) {
      state.SkipWithError("parse failed");
      break;
    }
    const auto* type = object->if_contains("type");
    const auto* payload = object->if_contains("payload");
    if (type == nullptr || !type->is_string() || payload == nullptr) {
      state.SkipWithError("bad event");
      break;
    }
    std::string payload_text = boost::json::serialize(*payload);
    benchmark::DoNotOptimize(payload_text);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * body.size()));
}
BENCHMARK(BM_WhatIf_BoostJsonEventRequest);

}  // namespace
}  // namespace relay
