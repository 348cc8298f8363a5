#pragma once
// Time as relay sees it: Unix milliseconds behind an interface, so that retry timing can be
// tested over a whole hour in milliseconds with a ManualClock.

#include <atomic>
#include <cstdint>

namespace relay {

using UnixMillis = std::int64_t;

class Clock {
 public:
  virtual ~Clock() = default;
  virtual UnixMillis now_ms() const = 0;
};

class SystemClock final : public Clock {
 public:
  UnixMillis now_ms() const override;
};

// A clock that only moves when told to; thread-safe.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(UnixMillis start) : now_(start) {}
  UnixMillis now_ms() const override { return now_.load(); }
  void set(UnixMillis t) { now_.store(t); }
  void advance(std::int64_t ms) { now_.fetch_add(ms); }

 private:
  std::atomic<UnixMillis> now_;
};

}  // namespace relay
