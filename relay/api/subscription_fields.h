#pragma once
// Subscription fields as the API takes them (POST and PATCH /v1/subscriptions): each field
// validated against the documented bounds, then applied. Errors are invalid_field.

#include <nlohmann/json.hpp>

#include "relay/core/result.h"
#include "relay/model/subscription.h"

namespace relay {

// Applies the fields present in `body` to `sub` (all of them on create, some on PATCH).
// On error `sub` is unchanged.
Status apply_subscription_fields(const nlohmann::json& body, Subscription& sub, bool creating);

// Whether `value` can be a signing secret: a string of 8-256 characters, and when it is a
// whsec_ secret, valid base64 of at least 8 bytes. Rotating a secret takes the same values.
Status validate_secret(const nlohmann::json& value);

}  // namespace relay
