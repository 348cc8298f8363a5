#pragma once
// Payload filters (spec section 6, "Payload filters"): a subscription's `filter` compiled once,
// when the subscription is stored or loaded, into a form that the ingest path (the writer
// thread) evaluates against every event whose type the subscription matches.
//
// The language, with every corner the spec leaves open decided here:
//
// Filters and values
// - A *filter* is a JSON object; it holds when every member holds (`{}` holds for every event).
//   A member is either a path with a value, or a combinator: `$and` / `$or` (a non-empty array
//   of filters: all / at least one holds) or `$not` (a filter: it does not hold). Any other key
//   starting with `$` is refused. Anything but an object is refused (a stored `null` is the
//   caller's: it means "no filter").
// - A *value* (what a path is tested with) is a JSON scalar, meaning `$eq` with it, or an
//   *operator object*: a non-empty object whose keys are all operators (`{}` is refused), which
//   holds when every operator holds (`{"$gte": 1, "$lt": 5}` is a range). In it `$and` / `$or`
//   (non-empty arrays of values) and `$not` (a value) combine tests of the same path:
//   `{"payload.n": {"$not": {"$in": [1, 2]}}}`. An array value is refused (use `$in`), and so is
//   an object with a key that is not an operator: equality with an array or object is not part
//   of the language.
//
// Paths
// - A path is the member's key: segments separated by `.`; `\.` is a literal dot and `\\` a
//   literal backslash; any other backslash, and an empty segment (`a..b`, a leading or
//   trailing dot), is refused. The first segment is `type` (the event type, a string; it has no
//   segments below it) or `payload` (alone: the whole payload). Any other start is refused.
// - Below `payload`, a segment reads the member of that name from an object (the last one if a
//   name repeats, as JSON.parse does); a segment that is a canonical array index (decimal
//   digits, no leading zero, below 2^32 - 1) reads that element (from 0) from an array, and
//   still names a member of an object ("payload.data.0" reads {"data": {"0": ...}} too). A
//   segment that finds no such member or element, or meets a scalar, leaves the path *missing*.
//   A present `null` is not missing. Arrays are never searched implicitly:
//   `{"payload.tags": "x"}` does not match `{"tags": ["x"]}` (use `payload.tags.0`).
//
// Operators (v is the value at the path)
// - `$eq` (a scalar; also a bare scalar) and `$ne`: typed equality. `1` never equals `"1"` nor
//   `true`; `null` equals only `null`; numbers compare by value, so `1` equals `1.0` and `-0`
//   (integers of up to 64 bits exactly; a fraction, or an integer beyond 64 bits, as a double);
//   strings compare decoded (`"\u0041"` equals `"A"`). An array or object v equals no scalar.
// - `$in` / `$nin`: an array of scalars, possibly empty: v equals one of them / none of them.
//   `$in: []` holds for no event, `$nin: []` for every event.
// - `$gt` `$gte` `$lt` `$lte`: a number or a string. They hold only when v is of the same kind:
//   numbers by value, strings by their UTF-8 bytes (which is code point order); a number never
//   compares with a string, and v of another kind (or missing) fails the test.
// - `$exists`: a bool. `true` holds when the path is present, even as `null`; `false` when missing.
// - `$prefix`: a string. Holds when v is a string starting with it (`""` for any string);
//   v of another kind fails it.
// - Missing paths: only `$exists: false`, `$ne` and `$nin` hold (per the spec); every other
//   operator fails. `$not` inverts whatever its operand gave, so `{"$not": {"payload.x": 1}}`
//   holds when payload.x is missing.
//
// Limits
// - Conditions: each operator testing a path counts one, a bare scalar counts one, `$in` counts
//   one however long its list; combinators count nothing. At most 64.
// - Depth: the outermost filter is level 1; each `$and`, `$or` and `$not`, at filter level or
//   inside an operator object, puts what it contains one level deeper. At most 8 levels, so a
//   condition may sit under at most 7 combinators.
//
// Errors are Errc::invalid_field with messages "filter: LOCATION: PROBLEM", where LOCATION is
// the path as written, with the combinators leading to it: `payload.n`, `$or[1].payload.n`,
// `payload.n.$not`, `$and[0]` (a location longer than 200 bytes is cut, on a UTF-8 boundary).
//
// Evaluation: FilterSubject holds one event. Its payload is indexed (JsonIndex, one pass over the
// already validated text, no copy) the first time any filter reads a `payload` path, and at most
// once whatever the number of filters evaluated against it; filters that read only `type`
// never index it. A payload that is not one JSON value (never the case for an accepted event)
// leaves every `payload` path missing. `matches` allocates nothing.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string_view>
#include <vector>

#include "relay/core/result.h"
#include "relay/routing/json_index.h"

namespace relay {

// What a filter is evaluated against: the event {"type": ..., "payload": ...}. Built once per
// event at ingest; both views must outlive it. Not thread-safe (its index is built lazily).
class FilterSubject {
 public:
  FilterSubject(std::string_view type, std::string_view payload_json) : type_(type), payload_(payload_json) {}
  FilterSubject(const FilterSubject&) = delete;
  FilterSubject& operator=(const FilterSubject&) = delete;

  std::string_view type() const { return type_; }
  // Whether a filter has needed the payload yet (so it has been indexed, once).
  bool payload_indexed() const { return state_ != State::unindexed; }
  // The payload's index, built on the first call; nullptr when the payload is not JSON.
  const JsonIndex* payload();

 private:
  enum class State : std::uint8_t { unindexed, indexed, unreadable };

  std::string_view type_;
  std::string_view payload_;
  JsonIndex index_;
  State state_ = State::unindexed;
};

// A compiled filter: immutable, so one instance may be shared by registry snapshots and threads.
class PayloadFilter {
 public:
  static constexpr std::size_t kMaxConditions = 64;
  static constexpr int kMaxDepth = 8;

  // Compiles a filter object (the language above). A bad filter is Errc::invalid_field whose
  // message names the offending path, e.g. "filter: payload.data.n: $gt takes a number or a string".
  static Result<std::shared_ptr<const PayloadFilter>> compile(const nlohmann::json& spec);

  ~PayloadFilter();
  PayloadFilter(const PayloadFilter&) = delete;
  PayloadFilter& operator=(const PayloadFilter&) = delete;

  // Whether the filter holds for the event. Reads the payload only if some path needs it.
  bool matches(FilterSubject& subject) const;
  // Conditions counted as above (at most kMaxConditions).
  std::size_t conditions() const { return conditions_; }
  // Whether any condition reads a `payload` path (false: matching never indexes the payload).
  bool reads_payload() const { return reads_payload_; }

 private:
  struct Node;
  struct Path;
  struct Operand;
  class Compiler;
  struct Value;

  PayloadFilter();
  bool holds(std::uint32_t node, FilterSubject& subject) const;
  bool holds(std::uint32_t node, const Value& value) const;
  Value resolve(const Path& path, FilterSubject& subject) const;

  // The compiled tree, flat: children are ranges of child_ids_.
  std::vector<Node> nodes_;
  std::uint32_t root_ = 0;
  std::vector<std::uint32_t> child_ids_;
  std::vector<Path> paths_;
  std::vector<Operand> operands_;
  std::size_t conditions_ = 0;
  bool reads_payload_ = false;
};

}  // namespace relay
