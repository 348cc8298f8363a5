#pragma once
// How the end of one transfer becomes an attempt's outcome and error text (spec section 3).
//
// Pure: EgressClient gathers what curl and the destination guard reported, and these functions
// decide, so that every outcome class is unit-tested without a network. A response status wins
// over the transport's result whenever one arrived; a guard refusal explains the connect error
// it causes; anything else is classified from the CURLcode.

#include <curl/curl.h>

#include <string>
#include <string_view>

#include "relay/model/delivery.h"

namespace relay {

// What is known about a transfer once curl reports it done.
struct TransferReport {
  long http_status = 0;                // CURLINFO_RESPONSE_CODE; 0 when no status line arrived
  CURLcode result = CURLE_OK;          // the transfer's result
  bool body_over_cap = false;          // we aborted the body at max_read_body (a write error)
  std::string_view blocked_reason;     // the guard's refusal of the last address; empty if none
  std::string_view curl_error;         // curl's CURLOPT_ERRORBUFFER text; empty if none
};

struct AttemptClassification {
  AttemptOutcome outcome = AttemptOutcome::other;
  std::string error;  // empty on success, 4xx and 5xx: the status and body tell those
};

// A final HTTP status: 2xx success, 4xx, 5xx; anything else (1xx as final, 3xx since redirects
// are not followed, nonsense) is `other`.
AttemptOutcome classify_status(long status);

// A transfer that ended without a usable status.
AttemptOutcome classify_curl_error(CURLcode code);

AttemptClassification classify_attempt(const TransferReport& report);

}  // namespace relay
