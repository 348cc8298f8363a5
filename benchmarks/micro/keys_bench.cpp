// Key encoding (storage/keys.h): every ingest makes two ids and about six keys, every attempt
// about four, so these run several times per event on the writer thread and the event loop.
// Baseline: copying a 36-byte id string, the floor for any function that returns a new key.

#include <benchmark/benchmark.h>

#include <string>

#include "relay/core/clock.h"
#include "storage/keys.h"

namespace relay {
namespace {

constexpr std::uint32_t kInstance = 0x1234abcd;

std::string sample_delivery_id() {
  SystemClock clock;
  keys::IdGenerator ids(clock, kInstance);
  return ids.next(keys::kDeliveryPrefix);
}

void BM_Baseline_CopyId(benchmark::State& state) {
  const std::string id = sample_delivery_id();
  for (auto _ : state) {
    std::string copy = id;
    benchmark::DoNotOptimize(copy);
  }
}
BENCHMARK(BM_Baseline_CopyId);

void BM_IdGenerator_Next(benchmark::State& state) {
  SystemClock clock;
  keys::IdGenerator ids(clock, kInstance);
  for (auto _ : state) {
    std::string id = ids.next(keys::kDeliveryPrefix);
    benchmark::DoNotOptimize(id);
  }
}
BENCHMARK(BM_IdGenerator_Next);

void BM_ParseId(benchmark::State& state) {
  const std::string id = sample_delivery_id();
  for (auto _ : state) {
    auto raw = keys::parse_id(id, keys::kDeliveryPrefix);
    benchmark::DoNotOptimize(raw);
  }
}
BENCHMARK(BM_ParseId);

void BM_DeliveryKey(benchmark::State& state) {
  const std::string id = sample_delivery_id();
  for (auto _ : state) {
    std::string key = keys::delivery_key(id);
    benchmark::DoNotOptimize(key);
  }
}
BENCHMARK(BM_DeliveryKey);

void BM_ScheduleKey(benchmark::State& state) {
  const std::string id = sample_delivery_id();
  const UnixMillis due = keys::id_time(id) + 5'000;
  for (auto _ : state) {
    std::string key = keys::schedule_key(due, id);
    benchmark::DoNotOptimize(key);
  }
}
BENCHMARK(BM_ScheduleKey);

void BM_EventDeliveryKey(benchmark::State& state) {
  SystemClock clock;
  keys::IdGenerator ids(clock, kInstance);
  const std::string event_id = ids.next(keys::kEventPrefix);
  const std::string delivery_id = ids.next(keys::kDeliveryPrefix);
  for (auto _ : state) {
    std::string key = keys::event_delivery_key(event_id, delivery_id);
    benchmark::DoNotOptimize(key);
  }
}
BENCHMARK(BM_EventDeliveryKey);

void BM_DecodeScheduleKey(benchmark::State& state) {
  const std::string id = sample_delivery_id();
  const std::string key = keys::schedule_key(keys::id_time(id), id);
  for (auto _ : state) {
    auto timed = keys::decode_schedule_key(key);
    benchmark::DoNotOptimize(timed);
  }
}
BENCHMARK(BM_DecodeScheduleKey);

void BM_IdTime(benchmark::State& state) {
  const std::string id = sample_delivery_id();
  for (auto _ : state) benchmark::DoNotOptimize(keys::id_time(id));
}
BENCHMARK(BM_IdTime);

}  // namespace
}  // namespace relay
