// Over 450 lines, on purpose: the compiler (Compiler, the larger half: every refusal with its
// path) and the evaluator (resolve, holds) work on PayloadFilter's private node layout, which
// stays out of the header; splitting them would put that layout in a shared internal header
// for two files that change together.
#include "relay/routing/payload_filter.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <compare>
#include <limits>
#include <string>
#include <utility>

namespace relay {
namespace {

using nlohmann::json;

// A JSON number by value: integers of up to 64 bits exactly, everything else as a double.
struct Number {
  bool integral = false;
  bool negative = false;
  std::uint64_t magnitude = 0;
  double value = 0;
};

Number parse_number(std::string_view text) {
  Number n;
  const char* begin = text.data();
  const char* end = text.data() + text.size();
  if (text.find_first_of(".eE") == std::string_view::npos) {
    const bool negative = !text.empty() && text.front() == '-';
    const auto [ptr, ec] = std::from_chars(begin + (negative ? 1 : 0), end, n.magnitude);
    if (ec == std::errc() && ptr == end) {
      n.integral = true;
      n.negative = negative && n.magnitude != 0;
      n.value = n.negative ? -static_cast<double>(n.magnitude) : static_cast<double>(n.magnitude);
      return n;
    }
  }
  const auto [ptr, ec] = std::from_chars(begin, end, n.value);
  if (ec != std::errc() || ptr != end) n.value = std::numeric_limits<double>::quiet_NaN();  // compares with nothing
  return n;
}

std::partial_ordering compare(const Number& a, const Number& b) {
  if (a.integral && b.integral) {
    if (a.negative != b.negative) return a.negative ? std::partial_ordering::less : std::partial_ordering::greater;
    const auto by_magnitude = a.magnitude <=> b.magnitude;
    return a.negative ? 0 <=> by_magnitude : by_magnitude <=> 0;
  }
  return a.value <=> b.value;
}

enum class Op : std::uint8_t { eq, ne, in, nin, gt, gte, lt, lte, exists, prefix, all, any, negate };

struct OperatorName {
  std::string_view name;
  Op op;
};
constexpr OperatorName kOperators[] = {
    {"$eq", Op::eq},   {"$ne", Op::ne},   {"$in", Op::in},         {"$nin", Op::nin},       {"$gt", Op::gt},
    {"$gte", Op::gte}, {"$lt", Op::lt},   {"$lte", Op::lte},       {"$exists", Op::exists}, {"$prefix", Op::prefix},
    {"$and", Op::all}, {"$or", Op::any}, {"$not", Op::negate},
};

const Op* find_operator(std::string_view name) {
  for (const auto& entry : kOperators) {
    if (entry.name == name) return &entry.op;
  }
  return nullptr;
}

bool is_scalar(const json& v) { return v.is_null() || v.is_boolean() || v.is_number() || v.is_string(); }

// A location for a message, cut to 200 bytes on a UTF-8 boundary: it is echoed in a JSON answer.
std::string cut(std::string_view text) {
  constexpr std::size_t kMax = 200;
  if (text.size() <= kMax) return std::string(text);
  std::size_t end = kMax;
  while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) --end;
  return std::string(text.substr(0, end)) + "...";
}

Error invalid(std::string_view location, std::string_view problem) {
  std::string message = "filter: ";
  if (!location.empty()) message += cut(location) + ": ";
  message += problem;
  return make_error(Errc::invalid_field, std::move(message));
}

std::string join(std::string_view location, std::string_view key) {
  if (location.empty()) return std::string(key);
  std::string out(location);
  out += '.';
  out += key;
  return out;
}

std::string at(std::string_view location, std::size_t index) {
  return std::string(location) + "[" + std::to_string(index) + "]";
}

}  // namespace

struct PayloadFilter::Path {
  struct Segment {
    std::string key;
    std::uint32_t index = 0;
    bool is_index = false;  // canonical decimal digits: also an array index
  };
  bool is_type = false;
  std::vector<Segment> segments;  // below `payload`
};

struct PayloadFilter::Operand {
  enum class Kind : std::uint8_t { null, boolean, number, string };
  Kind kind = Kind::null;
  bool boolean = false;
  Number number;
  std::string string;
};

struct PayloadFilter::Node {
  enum class Kind : std::uint8_t { all, any, negate, bind, test };
  Kind kind = Kind::all;
  Op op = Op::eq;      // test
  std::uint32_t a = 0;  // all/any: first of child_ids_; negate: child; bind: path; test: first operand
  std::uint32_t b = 0;  // all/any: children; bind: value node; test: operands
};

struct PayloadFilter::Value {
  enum class Kind : std::uint8_t { missing, null, boolean, number, string, container };
  Kind kind = Kind::missing;
  bool boolean = false;
  Number number;
  JsonString string;
};

// Builds a PayloadFilter from its JSON, checking the language and the limits on the way.
class PayloadFilter::Compiler {
 public:
  explicit Compiler(PayloadFilter& out) : out_(out) {}

  struct Compiled {
    std::uint32_t node;
    bool reads_payload;
  };

  Result<Compiled> filter(const json& spec, const std::string& location, int level) {
    if (level > kMaxDepth) return too_deep(location);
    if (!spec.is_object()) return invalid(location, "a filter is a JSON object");
    std::vector<Compiled> parts;
    for (const auto& member : spec.items()) {
      const std::string& key = member.key();
      const json& value = member.value();
      Result<Compiled> part = key.starts_with('$') ? combinator(key, value, location, level) : bound(key, value, location, level);
      if (!part) return part.error();
      parts.push_back(*part);
    }
    return combine(Node::Kind::all, parts);
  }

 private:
  Result<Compiled> too_deep(const std::string& location) {
    return invalid(location, "nested deeper than " + std::to_string(kMaxDepth) + " levels ($and, $or and $not each add one)");
  }

  // $and / $or / $not where a filter's member goes.
  Result<Compiled> combinator(const std::string& key, const json& value, const std::string& location, int level) {
    const std::string here = join(location, key);
    const Op* op = find_operator(key);
    if (op == nullptr) return invalid(here, "unknown operator; a filter holds paths (type, payload...) and $and, $or, $not");
    if (*op == Op::negate) {
      auto inner = filter(value, here, level + 1);
      if (!inner) return inner.error();
      return negate(*inner);
    }
    if (*op != Op::all && *op != Op::any) {
      return invalid(here, "an operator tests a path: {\"payload.x\": {\"" + cut(key) + "\": ...}}");
    }
    if (!value.is_array() || value.empty()) return invalid(here, cut(key) + " takes a non-empty array of filters");
    std::vector<Compiled> parts;
    for (std::size_t i = 0; i < value.size(); ++i) {
      auto part = filter(value[i], at(here, i), level + 1);
      if (!part) return part.error();
      parts.push_back(*part);
    }
    return combine(*op == Op::all ? Node::Kind::all : Node::Kind::any, parts);
  }

  // A path and the value it is tested with.
  Result<Compiled> bound(const std::string& key, const json& value, const std::string& location, int level) {
    const std::string here = join(location, key);
    auto path = parse_path(key);
    if (!path) return invalid(here, path.error().message);
    auto test = tests(value, here, level);
    if (!test) return test.error();
    const bool reads_payload = !path->is_type;
    out_.paths_.push_back(std::move(*path));
    return push({Node::Kind::bind, Op::eq, static_cast<std::uint32_t>(out_.paths_.size() - 1), test->node}, reads_payload);
  }

  // A value: a scalar (equality) or an operator object.
  Result<Compiled> tests(const json& value, const std::string& here, int level) {
    if (level > kMaxDepth) return too_deep(here);
    if (is_scalar(value)) return test(Op::eq, value, here, "$eq");
    if (value.is_array()) return invalid(here, "a value is a scalar or an operator object; to match one of several values use $in");
    if (value.empty()) return invalid(here, "an empty object is neither a scalar nor an operator object");
    for (const auto& member : value.items()) {
      if (!member.key().starts_with('$')) {
        return invalid(here, "equality with an object is not supported; a value is a scalar or an object of operators ($eq, "
                             "$in, $gt, ...), and \"" + cut(member.key()) + "\" is not one");
      }
    }
    std::vector<Compiled> parts;
    for (const auto& member : value.items()) {
      const std::string& name = member.key();
      const json& argument = member.value();
      const Op* op = find_operator(name);
      if (op == nullptr) return invalid(here, "unknown operator " + cut(name));
      Result<Compiled> part = Compiled{0, false};
      if (*op == Op::negate) {
        part = tests(argument, here + ".$not", level + 1);
        if (part) part = negate(*part);
      } else if (*op == Op::all || *op == Op::any) {
        if (!argument.is_array() || argument.empty()) return invalid(here, name + " takes a non-empty array of values");
        std::vector<Compiled> alternatives;
        for (std::size_t i = 0; i < argument.size() && part; ++i) {
          part = tests(argument[i], at(here + "." + name, i), level + 1);
          if (part) alternatives.push_back(*part);
        }
        if (part) part = combine(*op == Op::all ? Node::Kind::all : Node::Kind::any, alternatives);
      } else {
        part = test(*op, argument, here, name);
      }
      if (!part) return part.error();
      parts.push_back(*part);
    }
    return combine(Node::Kind::all, parts);
  }

  // One operator with its argument: one condition.
  Result<Compiled> test(Op op, const json& argument, const std::string& here, const std::string& name) {
    const auto first = static_cast<std::uint32_t>(out_.operands_.size());
    std::uint32_t count = 1;
    switch (op) {
      case Op::eq:
      case Op::ne:
        if (!is_scalar(argument)) return invalid(here, name + " takes a scalar (null, a bool, a number or a string)");
        break;
      case Op::in:
      case Op::nin:
        if (!argument.is_array() || !std::all_of(argument.begin(), argument.end(), is_scalar)) {
          return invalid(here, name + " takes an array of scalars");
        }
        count = static_cast<std::uint32_t>(argument.size());
        break;
      case Op::gt:
      case Op::gte:
      case Op::lt:
      case Op::lte:
        if (!argument.is_number() && !argument.is_string()) return invalid(here, name + " takes a number or a string");
        break;
      case Op::exists:
        if (!argument.is_boolean()) return invalid(here, name + " takes true or false");
        break;
      case Op::prefix:
        if (!argument.is_string()) return invalid(here, name + " takes a string");
        break;
      case Op::all:
      case Op::any:
      case Op::negate:
        break;  // combinators: tests() and combinator()
    }
    if (++out_.conditions_ > kMaxConditions) {
      return invalid(here, "more than " + std::to_string(kMaxConditions) + " conditions (each operator is one)");
    }
    if (op == Op::in || op == Op::nin) {
      for (const json& element : argument) {
        auto operand = to_operand(element, here, name);
        if (!operand) return operand.error();
        out_.operands_.push_back(std::move(*operand));
      }
    } else {
      auto operand = to_operand(argument, here, name);
      if (!operand) return operand.error();
      out_.operands_.push_back(std::move(*operand));
    }
    return push({Node::Kind::test, op, first, count}, false);
  }

  static Result<Operand> to_operand(const json& v, const std::string& here, const std::string& name) {
    Operand o;
    if (v.is_null()) {
      o.kind = Operand::Kind::null;
    } else if (v.is_boolean()) {
      o.kind = Operand::Kind::boolean;
      o.boolean = v.get<bool>();
    } else if (v.is_string()) {
      o.kind = Operand::Kind::string;
      o.string = v.get<std::string>();
    } else if (v.is_number_unsigned()) {
      o.kind = Operand::Kind::number;
      o.number.integral = true;
      o.number.magnitude = v.get<std::uint64_t>();
      o.number.value = static_cast<double>(o.number.magnitude);
    } else if (v.is_number_integer()) {
      const auto i = v.get<std::int64_t>();
      o.kind = Operand::Kind::number;
      o.number.integral = true;
      o.number.negative = i < 0;
      o.number.magnitude = i < 0 ? static_cast<std::uint64_t>(-(i + 1)) + 1 : static_cast<std::uint64_t>(i);
      o.number.value = static_cast<double>(i);
    } else {
      const double d = v.get<double>();
      if (!std::isfinite(d)) return invalid(here, name + " takes a finite number");
      o.kind = Operand::Kind::number;
      o.number.value = d;
    }
    return o;
  }

  Result<Compiled> negate(Compiled inner) { return push({Node::Kind::negate, Op::eq, inner.node, 0}, inner.reads_payload); }

  // All or any of the parts; tests that do not read the payload go first, so that a filter whose
  // `type` test fails never has the payload indexed.
  Result<Compiled> combine(Node::Kind kind, std::vector<Compiled>& parts) {
    if (parts.size() == 1) return parts.front();
    std::stable_partition(parts.begin(), parts.end(), [](const Compiled& c) { return !c.reads_payload; });
    const auto first = static_cast<std::uint32_t>(out_.child_ids_.size());
    bool reads_payload = false;
    for (const Compiled& part : parts) {
      out_.child_ids_.push_back(part.node);
      reads_payload = reads_payload || part.reads_payload;
    }
    return push({kind, Op::eq, first, static_cast<std::uint32_t>(parts.size())}, reads_payload);
  }

  Compiled push(Node node, bool reads_payload) {
    out_.nodes_.push_back(node);
    return Compiled{static_cast<std::uint32_t>(out_.nodes_.size() - 1), reads_payload};
  }

  // "payload.data.calendar_id", "payload.items.0.id", "payload.a\.b" (one key "a.b"), "type".
  static Result<Path> parse_path(std::string_view key) {
    std::vector<std::string> segments(1);
    for (std::size_t i = 0; i < key.size(); ++i) {
      const char c = key[i];
      if (c == '\\') {
        if (i + 1 == key.size() || (key[i + 1] != '.' && key[i + 1] != '\\')) {
          return make_error(Errc::invalid_field, "in a path a backslash escapes only a dot (\\.) or a backslash (\\\\)");
        }
        segments.back() += key[++i];
      } else if (c == '.') {
        if (segments.back().empty()) return make_error(Errc::invalid_field, "a path has no empty segments");
        segments.emplace_back();
      } else {
        segments.back() += c;
      }
    }
    if (segments.back().empty()) return make_error(Errc::invalid_field, "a path has no empty segments");
    Path path;
    if (segments.front() == "type") {
      if (segments.size() > 1) return make_error(Errc::invalid_field, "type is a string and has no fields");
      path.is_type = true;
      return path;
    }
    if (segments.front() != "payload") return make_error(Errc::invalid_field, "a path starts with type or payload");
    for (std::size_t i = 1; i < segments.size(); ++i) {
      Path::Segment segment;
      segment.key = std::move(segments[i]);
      const std::string& k = segment.key;
      if (k.size() <= 10 && (k.size() == 1 || k.front() != '0') &&
          std::all_of(k.begin(), k.end(), [](char d) { return d >= '0' && d <= '9'; })) {
        std::uint64_t index = 0;
        std::from_chars(k.data(), k.data() + k.size(), index);
        if (index < JsonIndex::npos) {
          segment.is_index = true;
          segment.index = static_cast<std::uint32_t>(index);
        }
      }
      path.segments.push_back(std::move(segment));
    }
    return path;
  }

  PayloadFilter& out_;
};

const JsonIndex* FilterSubject::payload() {
  if (state_ == State::unindexed) state_ = index_.build(payload_) ? State::indexed : State::unreadable;
  return state_ == State::indexed ? &index_ : nullptr;
}

PayloadFilter::PayloadFilter() = default;
PayloadFilter::~PayloadFilter() = default;

Result<std::shared_ptr<const PayloadFilter>> PayloadFilter::compile(const nlohmann::json& spec) {
  std::shared_ptr<PayloadFilter> filter(new PayloadFilter());
  Compiler compiler(*filter);
  auto root = compiler.filter(spec, "", 1);
  if (!root) return root.error();
  filter->root_ = root->node;
  filter->reads_payload_ = root->reads_payload;
  return std::shared_ptr<const PayloadFilter>(std::move(filter));
}

bool PayloadFilter::matches(FilterSubject& subject) const { return holds(root_, subject); }

PayloadFilter::Value PayloadFilter::resolve(const Path& path, FilterSubject& subject) const {
  Value value;
  if (path.is_type) {
    value.kind = Value::Kind::string;
    value.string = JsonString{subject.type(), false};
    return value;
  }
  const JsonIndex* index = subject.payload();
  if (index == nullptr) return value;
  std::uint32_t node = JsonIndex::root();
  for (const Path::Segment& segment : path.segments) {
    switch (index->kind(node)) {
      case JsonIndex::Kind::object:
        node = index->member(node, segment.key);
        break;
      case JsonIndex::Kind::array:
        node = segment.is_index ? index->element(node, segment.index) : JsonIndex::npos;
        break;
      default:
        node = JsonIndex::npos;
    }
    if (node == JsonIndex::npos) return value;
  }
  switch (index->kind(node)) {
    case JsonIndex::Kind::null:
      value.kind = Value::Kind::null;
      break;
    case JsonIndex::Kind::boolean_false:
    case JsonIndex::Kind::boolean_true:
      value.kind = Value::Kind::boolean;
      value.boolean = index->kind(node) == JsonIndex::Kind::boolean_true;
      break;
    case JsonIndex::Kind::number:
      value.kind = Value::Kind::number;
      value.number = parse_number(index->number_text(node));
      break;
    case JsonIndex::Kind::string:
      value.kind = Value::Kind::string;
      value.string = index->string(node);
      break;
    case JsonIndex::Kind::array:
    case JsonIndex::Kind::object:
      value.kind = Value::Kind::container;
      break;
  }
  return value;
}

bool PayloadFilter::holds(std::uint32_t id, FilterSubject& subject) const {
  const Node& node = nodes_[id];
  switch (node.kind) {
    case Node::Kind::all:
      for (std::uint32_t i = node.a; i < node.a + node.b; ++i) {
        if (!holds(child_ids_[i], subject)) return false;
      }
      return true;
    case Node::Kind::any:
      for (std::uint32_t i = node.a; i < node.a + node.b; ++i) {
        if (holds(child_ids_[i], subject)) return true;
      }
      return false;
    case Node::Kind::negate:
      return !holds(node.a, subject);
    case Node::Kind::bind:
      return holds(node.b, resolve(paths_[node.a], subject));
    case Node::Kind::test:
      break;
  }
  return false;  // a test is never where a filter is
}

namespace {

template <typename Value, typename Operand>
bool equal(const Value& v, const Operand& o) {
  switch (o.kind) {
    case Operand::Kind::null:
      return v.kind == Value::Kind::null;
    case Operand::Kind::boolean:
      return v.kind == Value::Kind::boolean && v.boolean == o.boolean;
    case Operand::Kind::number:
      return v.kind == Value::Kind::number && compare(v.number, o.number) == 0;
    case Operand::Kind::string:
      return v.kind == Value::Kind::string && v.string.equals(o.string);
  }
  return false;
}

// Numbers with numbers, strings with strings; anything else is unordered.
template <typename Value, typename Operand>
std::partial_ordering order(const Value& v, const Operand& o) {
  if (v.kind == Value::Kind::number && o.kind == Operand::Kind::number) return compare(v.number, o.number);
  if (v.kind == Value::Kind::string && o.kind == Operand::Kind::string) return v.string.compare(o.string);
  return std::partial_ordering::unordered;
}

}  // namespace

bool PayloadFilter::holds(std::uint32_t id, const Value& value) const {
  const Node& node = nodes_[id];
  switch (node.kind) {
    case Node::Kind::all:
      for (std::uint32_t i = node.a; i < node.a + node.b; ++i) {
        if (!holds(child_ids_[i], value)) return false;
      }
      return true;
    case Node::Kind::any:
      for (std::uint32_t i = node.a; i < node.a + node.b; ++i) {
        if (holds(child_ids_[i], value)) return true;
      }
      return false;
    case Node::Kind::negate:
      return !holds(node.a, value);
    case Node::Kind::bind:
      return false;  // a path is never tested inside another path's value
    case Node::Kind::test:
      break;
  }
  const auto any_equal = [&] {
    for (std::uint32_t i = node.a; i < node.a + node.b; ++i) {
      if (equal(value, operands_[i])) return true;
    }
    return false;
  };
  if (node.op == Op::in) return any_equal();
  if (node.op == Op::nin) return !any_equal();
  const Operand& first = operands_[node.a];  // every other operator has exactly one
  switch (node.op) {
    case Op::eq:
      return equal(value, first);
    case Op::ne:
      return !equal(value, first);
    case Op::gt:
      return order(value, first) > 0;
    case Op::gte:
      return order(value, first) >= 0;
    case Op::lt:
      return order(value, first) < 0;
    case Op::lte:
      return order(value, first) <= 0;
    case Op::exists:
      return (value.kind != Value::Kind::missing) == first.boolean;
    case Op::prefix:
      return value.kind == Value::Kind::string && value.string.starts_with(first.string);
    case Op::in:
    case Op::nin:
    case Op::all:
    case Op::any:
    case Op::negate:
      break;
  }
  return false;
}

}  // namespace relay
