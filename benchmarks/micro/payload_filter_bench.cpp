// Payload filters (relay/routing/payload_filter.h) as the ingest path runs them on the writer
// thread: one FilterSubject per event, then every candidate subscription's filter against it.
// The spec's load is 100 subscriptions with 3-condition filters; the payload is a Meeting BaaS
// `complete` webhook (bot id, transcript with words, speakers, recording URL), as its docs show it.
// Each iteration is one event: the figure is ns per event for all 100 filters.
// Baselines: indexing the payload alone (the cost paid once per event, whatever the filters),
// and parsing it into an nlohmann tree (what a tree-based evaluation would pay instead).

#include <benchmark/benchmark.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "relay/routing/payload_filter.h"

namespace relay {
namespace {

constexpr std::string_view kType = "bot.complete";
constexpr std::string_view kPayload =
    R"({"event":"complete","data":{"bot_id":"123e4567-e89b-12d3-a456-426614174042","transcript":[{"speaker":"John Doe",)"
    R"("offset":1.5,"words":[{"start":1.5,"end":1.9,"word":"Hello"},{"start":2.0,"end":2.4,"word":"everyone"},)"
    R"({"start":2.5,"end":2.9,"word":"thanks"},{"start":3.0,"end":3.3,"word":"for"},{"start":3.4,"end":3.9,"word":"joining"}]},)"
    R"({"speaker":"Jane Smith","offset":4.2,"words":[{"start":4.2,"end":4.6,"word":"Happy"},{"start":4.7,"end":4.9,"word":"to"},)"
    R"({"start":5.0,"end":5.3,"word":"be"},{"start":5.4,"end":5.8,"word":"here"}]}],"speakers":["Jane Smith","John Doe"],)"
    R"("mp4":"https://storage.example.com/recordings/video123.mp4?token=abc","event":"complete"}})";

// Bot 42 is the payload's.
std::string bot_id(int i) { return "123e4567-e89b-12d3-a456-4266141740" + std::to_string(i / 10) + std::to_string(i % 10); }

// Per-bot subscriptions: one filter of the 100 matches, the others fail on their first condition.
std::vector<std::shared_ptr<const PayloadFilter>> per_bot_filters() {
  std::vector<std::shared_ptr<const PayloadFilter>> filters;
  for (int i = 0; i < 100; ++i) {
    const nlohmann::json spec = {{"payload.data.bot_id", bot_id(i)},
                                 {"payload.event", {{"$in", {"complete", "failed"}}}},
                                 {"payload.data.transcript.0.offset", {{"$gte", 1}}}};
    filters.push_back(*PayloadFilter::compile(spec));
  }
  return filters;
}

// The worst case: every filter reads all three paths and matches.
std::vector<std::shared_ptr<const PayloadFilter>> all_hold_filters() {
  std::vector<std::shared_ptr<const PayloadFilter>> filters;
  for (int i = 0; i < 100; ++i) {
    const nlohmann::json spec = {{"payload.data.bot_id", {{"$prefix", "123e4567-"}}},
                                 {"payload.data.speakers.1", "John Doe"},
                                 {"payload.data.transcript.1.words.3.end", {{"$lt", 6 + i}}}};
    filters.push_back(*PayloadFilter::compile(spec));
  }
  return filters;
}

void run(benchmark::State& state, const std::vector<std::shared_ptr<const PayloadFilter>>& filters, int expected) {
  for (auto _ : state) {
    FilterSubject subject(kType, kPayload);
    int matched = 0;
    for (const auto& filter : filters) matched += filter->matches(subject) ? 1 : 0;
    if (matched != expected) {
      state.SkipWithError("unexpected matches");
      break;
    }
    benchmark::DoNotOptimize(matched);
  }
  state.SetItemsProcessed(state.iterations());  // events
}

void BM_PayloadFilter_100PerBotFilters(benchmark::State& state) { run(state, per_bot_filters(), 1); }
BENCHMARK(BM_PayloadFilter_100PerBotFilters);

void BM_PayloadFilter_100FiltersAllHold(benchmark::State& state) { run(state, all_hold_filters(), 100); }
BENCHMARK(BM_PayloadFilter_100FiltersAllHold);

void BM_PayloadFilter_100TypeOnlyFilters(benchmark::State& state) {
  std::vector<std::shared_ptr<const PayloadFilter>> filters;
  for (int i = 0; i < 100; ++i) {
    filters.push_back(*PayloadFilter::compile({{"type", {{"$in", {"bot.complete", "bot.failed", "bot." + std::to_string(i)}}}}}));
  }
  run(state, filters, 100);
}
BENCHMARK(BM_PayloadFilter_100TypeOnlyFilters);

void BM_Baseline_IndexPayload(benchmark::State& state) {
  for (auto _ : state) {
    JsonIndex index;
    benchmark::DoNotOptimize(index.build(kPayload));
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * kPayload.size()));
}
BENCHMARK(BM_Baseline_IndexPayload);

void BM_Baseline_NlohmannParsePayload(benchmark::State& state) {
  for (auto _ : state) {
    nlohmann::json tree = nlohmann::json::parse(kPayload);
    benchmark::DoNotOptimize(tree);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * kPayload.size()));
}
BENCHMARK(BM_Baseline_NlohmannParsePayload);

}  // namespace
}  // namespace relay
