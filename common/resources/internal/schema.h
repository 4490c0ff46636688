#pragma once
// The schema: one description per kind of every field (name, type, default, printing rule),
// in upstream's Go struct order. Parsing, unknown-field rejection, type checks, defaulting,
// field order and output all come from it; rules that span fields live in validate.cc.

#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/resources/resource.h"

namespace calico::resources::internal {

enum class ValueKind {
  kString,
  kInt,
  kNumber,      // float64 (policy order); integral values print as integers, like Go
  kBool,
  kEnum,        // string from a fixed set
  kCidr,        // "10.0.0.0/8" or a bare IP; printed canonically, host bits kept
  kIp,
  kMac,
  kSelector,    // parsed; kept as written
  kPort,        // numorstring.Port: 80, "80:90" or a named port; "80" prints as 80
  kProtocol,    // numorstring.Protocol: TCP|UDP|ICMP|ICMPv6|SCTP|UDPLite or 1-255
  kIntOrString, // k8s IntOrString
  kAsn,         // numorstring.ASNumber: 64512 or "1.10" (asdot); prints as an integer
  kDuration,    // metav1.Duration: "90s", "1m30s"
  kList,
  kStringMap,   // map[string]string: keys print sorted, like Go
  kObject,
  kAny,         // passed through unchecked (rarely used nested config)
};

struct Type;
using TypeP = std::shared_ptr<const Type>;

struct Field {
  std::string name;
  TypeP type;
  Json default_value;       // null: no default
  bool omit_false = false;  // Go `bool` + omitempty: false is the zero value and is not printed
  bool omit_zero = false;   // Go `int` + omitempty
  bool keep_empty = false;  // printed even when empty (required structs such as podSelector)

  Field Default(Json v) && { default_value = std::move(v); return std::move(*this); }
  Field OmitFalse() && { omit_false = true; return std::move(*this); }
  Field OmitZero() && { omit_zero = true; return std::move(*this); }
  Field KeepEmpty() && { keep_empty = true; return std::move(*this); }
};

struct Type {
  ValueKind kind = ValueKind::kString;
  std::vector<std::string> enum_values;  // kEnum
  std::vector<int64_t> int_values;       // kInt restricted to a set (ipVersion 4|6)
  int64_t min = std::numeric_limits<int64_t>::min();
  int64_t max = std::numeric_limits<int64_t>::max();
  int family = 0;                        // kCidr/kIp: 4, 6, or 0 for either
  std::vector<Field> fields;             // kObject
  TypeP elem;                            // kList
};

// The whole object of a kind: apiVersion, kind, metadata, spec (and status where upstream has one).
const Type& ObjectType(const KindInfo& kind);

// Checks `value` against `type` and returns it canonical: fields in schema order, defaults
// applied, zero values omitted as Go's omitempty would. Errors read "<path>: <value> <rule>".
absl::StatusOr<Json> Normalize(const Json& value, const Type& type, const std::string& path);

// "\"abc\"" for strings, the JSON text otherwise: how messages show a value.
std::string ShowValue(const Json& value);
std::string JoinPath(const std::string& path, const std::string& key);

}  // namespace calico::resources::internal
