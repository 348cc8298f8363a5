// What-if for the ingest path's JSON (see FINDINGS.md): the work of BM_ParseEventRequest (parse the
// 1 KiB body, check `type`, re-serialise `payload` to compact text) done with Boost.JSON, which
// ships with the Boost 1.81 relay already uses (header-only here via <boost/json/src.hpp>), parsing
// into a stack arena so that the DOM costs no malloc and no destructor walk; and Boost.JSON's
// validation alone (basic_parser with a handler that keeps nothing), the floor of any Boost.JSON
// based ingest parser, to compare with BM_ParseEventBody (relay's JsonScanner: validation,
// compaction of the payload and the event's members in one pass). Not used by relay.

#include <benchmark/benchmark.h>

#include <boost/json/basic_parser_impl.hpp>
#include <boost/json/monotonic_resource.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/src.hpp>
#include <string>

#include "benchmarks/micro/event_payload.h"

namespace relay {
namespace {

using bench::event_body;

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

// A basic_parser handler that accepts every event and keeps nothing.
struct ValidatingHandler {
  using string_view = boost::json::string_view;
  using error_code = boost::system::error_code;
  static constexpr std::size_t max_object_size = std::size_t(-1);
  static constexpr std::size_t max_array_size = std::size_t(-1);
  static constexpr std::size_t max_key_size = std::size_t(-1);
  static constexpr std::size_t max_string_size = std::size_t(-1);
  bool on_document_begin(error_code&) { return true; }
  bool on_document_end(error_code&) { return true; }
  bool on_object_begin(error_code&) { return true; }
  bool on_object_end(std::size_t, error_code&) { return true; }
  bool on_array_begin(error_code&) { return true; }
  bool on_array_end(std::size_t, error_code&) { return true; }
  bool on_key_part(string_view, std::size_t, error_code&) { return true; }
  bool on_key(string_view, std::size_t, error_code&) { return true; }
  bool on_string_part(string_view, std::size_t, error_code&) { return true; }
  bool on_string(string_view, std::size_t, error_code&) { return true; }
  bool on_number_part(string_view, error_code&) { return true; }
  bool on_int64(std::int64_t, string_view, error_code&) { return true; }
  bool on_uint64(std::uint64_t, string_view, error_code&) { return true; }
  bool on_double(double, string_view, error_code&) { return true; }
  bool on_bool(bool, error_code&) { return true; }
  bool on_null(error_code&) { return true; }
  bool on_comment_part(string_view, error_code&) { return true; }
  bool on_comment(string_view, error_code&) { return true; }
};

void BM_WhatIf_BoostJsonValidate(benchmark::State& state) {
  const std::string& body = event_body();
  boost::json::parse_options options;
  options.max_depth = 256;
  boost::json::basic_parser<ValidatingHandler> parser(options);
  for (auto _ : state) {
    boost::system::error_code ec;
    parser.reset();
    const std::size_t used = parser.write_some(false, body.data(), body.size(), ec);
    if (ec || used != body.size()) {
      state.SkipWithError("validation failed");
      break;
    }
    benchmark::DoNotOptimize(used);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * body.size()));
}
BENCHMARK(BM_WhatIf_BoostJsonValidate);

}  // namespace
}  // namespace relay
