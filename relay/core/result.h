#pragma once
// Result<T>: the value of an operation or the reason it failed, for hot paths where
// exceptions are not used (C++20 has no std::expected yet).

#include <string>
#include <utility>
#include <variant>

namespace relay {

// Error kinds map one-to-one onto the error codes of the HTTP contract (spec section 2);
// relay/api/http_responses.cpp gives each its code and status.
enum class Errc {
  invalid_json,
  invalid_field,
  unauthorized,
  forbidden,
  not_found,
  method_not_allowed,
  conflict,
  payload_too_large,
  unsupported_media_type,
  too_many_requests,
  unavailable,
  shard_unavailable,  // cluster mode: the shard that holds the object did not answer
  internal,
};

struct Error {
  Errc code;
  std::string message;
};

template <typename T>
class Result {
 public:
  Result(T value) : state_(std::move(value)) {}              // NOLINT: implicit by design
  Result(Error error) : state_(std::move(error)) {}          // NOLINT: implicit by design

  bool ok() const { return state_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & { return std::get<0>(state_); }
  const T& value() const& { return std::get<0>(state_); }
  T&& value() && { return std::get<0>(std::move(state_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  const Error& error() const { return std::get<1>(state_); }

 private:
  std::variant<T, Error> state_;
};

// Status: a Result without a value.
struct Ok {};
using Status = Result<Ok>;

inline Error make_error(Errc code, std::string message) { return Error{code, std::move(message)}; }

}  // namespace relay
