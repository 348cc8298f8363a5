#pragma once
// HttpClient: a small blocking HTTP/1.1 client over one libcurl easy handle, for tests that talk
// to relayd from the outside. The handle (and so its keep-alive connection) is reused across
// requests, which matters for bursts. Use one client per thread.

#include <chrono>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace relay::test {

using Headers = std::vector<std::string>;  // "Name: value" lines

struct HttpResponse {
  long status = 0;                             // 0 when no response arrived (see transport_error)
  std::map<std::string, std::string> headers;  // names lower-cased; the last value wins
  std::string body;
  std::string transport_error;                 // curl's message when status == 0

  // The body as JSON; a discarded value (is_discarded()) when it is not JSON.
  nlohmann::json json() const;
  // error.code of a relay error body, or "" when the body is not one.
  std::string error_code() const;
  // The header value, or "" (name is case-insensitive).
  std::string header(std::string_view name) const;
  // "HTTP 400 {...}" for assertion messages.
  std::string describe() const;
};

// "Authorization: Bearer KEY" and "X-Api-Key: KEY".
std::string bearer(std::string_view key);
std::string x_api_key(std::string_view key);
// Percent-encodes everything but RFC 3986 unreserved characters (a cursor in a query is opaque).
std::string url_encode(std::string_view text);

class HttpClient {
 public:
  HttpClient();
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // Sends `body` (if not empty) with Content-Type: application/json unless `headers` set one.
  // Never throws for network failures: they come back as status 0 with transport_error set.
  HttpResponse request(std::string_view method, const std::string& url, const std::string& body = {},
                       const Headers& headers = {});

  HttpResponse get(const std::string& url, const Headers& headers = {}) {
    return request("GET", url, {}, headers);
  }
  HttpResponse post(const std::string& url, const std::string& body, const Headers& headers = {}) {
    return request("POST", url, body, headers);
  }
  HttpResponse patch(const std::string& url, const std::string& body, const Headers& headers = {}) {
    return request("PATCH", url, body, headers);
  }
  HttpResponse del(const std::string& url, const Headers& headers = {}) {
    return request("DELETE", url, {}, headers);
  }

  // The limit of each later request, connecting included (default 60 s; connecting 10 s).
  void set_timeout(std::chrono::milliseconds timeout) { timeout_ = timeout; }

 private:
  void* curl_;  // CURL*, kept opaque so tests need not include curl.h
  std::chrono::milliseconds timeout_{60'000};
};

}  // namespace relay::test
