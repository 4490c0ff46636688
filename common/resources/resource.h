#pragma once
// common/resources: projectcalico.org/v3 objects (and networking.k8s.io/v1 NetworkPolicy) as
// upstream names them, read and written as YAML or JSON.
// Owns: the schema of every kind (field names, types, defaults, validation), key layout.
// Never touches: the datastore or the kernel (see client.h for reads/writes).
// Invariants:
//  - A Resource's object is canonical: fields in schema order, defaults applied, validated.
//    So Parse(ToYaml(r)) == r, and applying `get -o yaml` output again changes nothing.
//  - Validation errors name the object, the field path, the value and the rule:
//      IPPool "p1": spec.blockSize: 33 is outside 20-32 for IPv4

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"

namespace calico::resources {

using Json = nlohmann::ordered_json;
using Labels = std::map<std::string, std::string>;

struct KindInfo {
  std::string_view kind;         // "IPPool"
  std::string_view api_version;  // "projectcalico.org/v3" or "networking.k8s.io/v1"
  std::string_view plural;       // "ippools": the datastore key segment
  bool namespaced = false;
  std::vector<std::string_view> aliases;  // lower-case: "ippool", "ippools", "ipp", "pool", ...
};

// All kinds, in a stable order (the order calicoctl lists them in help).
const std::vector<const KindInfo*>& AllKinds();
// By kind name or alias, case-insensitive ("IPPool", "ippools", "ipp", "wep", "bgpconfig").
const KindInfo* FindKind(std::string_view kind_or_alias);
// Exact lookup as a manifest names it: apiVersion and kind (case-sensitive), e.g.
// ("networking.k8s.io/v1", "NetworkPolicy") is the Kubernetes kind, not Calico's.
const KindInfo* FindKind(std::string_view api_version, std::string_view kind);

struct Resource {
  const KindInfo* kind = nullptr;
  Json object;  // {apiVersion, kind, metadata{...}, spec{...}} in canonical order

  std::string Name() const;
  std::string Namespace() const;  // empty for cluster-scoped kinds
  // "IPPool \"p1\"" or "NetworkPolicy \"ns1/allow\"": how messages name the object.
  std::string Describe() const;
  bool operator==(const Resource& other) const { return kind == other.kind && object == other.object; }
};

// Builds a canonical, validated Resource from a decoded object: checks apiVersion and kind,
// rejects unknown fields and wrong types, applies upstream's defaults, orders fields,
// validates every rule of the kind. `default_namespace` fills metadata.namespace of namespaced
// kinds that omit it (calicoctl's -n, else "default").
absl::StatusOr<Resource> FromObject(const Json& object, std::string_view default_namespace = "default");

// One document of a multi-document input, after `kind: List` expansion.
struct ParsedDocument {
  int index = 0;              // 1-based position in the input (items of a List count separately)
  Json object;                // as decoded, before validation (for messages)
  absl::StatusOr<Resource> resource = absl::UnknownError("unparsed");
};
// Decodes YAML (multi-document, `---`) or JSON (one object, or a List). A syntax error in the
// stream fails the whole input (InvalidArgument naming the line); a document that decodes but
// does not validate fails only itself, in its ParsedDocument.
absl::StatusOr<std::vector<ParsedDocument>> ParseDocuments(std::string_view text,
                                                           std::string_view default_namespace = "default");

// Output as calicoctl prints it. One resource prints bare; several print as a `kind: List`
// with apiVersion projectcalico.org/v3 and items (upstream's shape).
std::string ToYaml(const std::vector<Resource>& resources, bool force_list = false);
std::string ToJson(const std::vector<Resource>& resources, bool force_list = false);

// Datastore key, Calico's etcd v3 layout:
//   /calico/resources/v3/projectcalico.org/<plural>/<name>
//   /calico/resources/v3/projectcalico.org/<plural>/<namespace>/<name>
// (networking.k8s.io kinds use their own group segment).
std::string Key(const KindInfo& kind, std::string_view ns, std::string_view name);
inline std::string Key(const Resource& r) { return Key(*r.kind, r.Namespace(), r.Name()); }
// Prefix listing a kind, in one namespace or (ns empty) all of them. Ends with '/'.
std::string KeyPrefix(const KindInfo& kind, std::string_view ns = "");

// The stored value is compact JSON of the object without metadata.resourceVersion;
// FromStored sets resourceVersion to the entry's mod revision.
std::string ToStored(const Resource& resource);
absl::StatusOr<Resource> FromStored(std::string_view value, int64_t mod_revision);

// Cross-object rules that need the other objects of the kind (validation of one object alone
// cannot see them): IPPool CIDRs may not overlap each other.
// Whether ValidateAgainstExisting looks at other objects for this kind (IPPool overlap);
// writers skip listing the kind when it does not.
bool HasCrossObjectRules(const KindInfo& kind);
absl::Status ValidateAgainstExisting(const Resource& resource, const std::vector<Resource>& existing);

}  // namespace calico::resources
