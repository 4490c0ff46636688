#include "common/resources/resource.h"

#include "common/base/status_macros.h"
#include "common/resources/internal/net.h"
#include "common/resources/internal/schema.h"
#include "common/resources/internal/validate.h"

namespace calico::resources {
namespace {

std::string StringAt(const Json& object, std::string_view outer, std::string_view inner) {
  if (!object.is_object()) return "";
  auto o = object.find(outer);
  if (o == object.end() || !o->is_object()) return "";
  auto i = o->find(inner);
  return i != o->end() && i->is_string() ? i->get<std::string>() : "";
}

std::string DescribeParts(std::string_view kind, std::string_view ns, std::string_view name) {
  std::string id = ns.empty() ? std::string(name) : std::string(ns) + "/" + std::string(name);
  return std::string(kind) + " \"" + id + "\"";
}

absl::Status Prefixed(const std::string& who, const absl::Status& status) {
  return absl::Status(status.code(), who + ": " + ToStd(status.message()));
}

}  // namespace

std::string Resource::Name() const { return StringAt(object, "metadata", "name"); }

std::string Resource::Namespace() const {
  return kind && kind->namespaced ? StringAt(object, "metadata", "namespace") : "";
}

std::string Resource::Describe() const {
  return DescribeParts(kind ? kind->kind : "resource", Namespace(), Name());
}

absl::StatusOr<Resource> FromObject(const Json& object, std::string_view default_namespace) {
  if (!object.is_object()) {
    return absl::InvalidArgumentError("document is not an object (got " + internal::ShowValue(object) + ")");
  }
  auto text = [&](const char* key) {
    auto it = object.find(key);
    return it != object.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  std::string api_version = text("apiVersion"), kind_name = text("kind");
  if (kind_name.empty()) return absl::InvalidArgumentError("document has no kind");
  const KindInfo* kind = FindKind(api_version, kind_name);
  if (kind == nullptr) {
    // Name the likely kind so the message says what is wrong with it.
    for (const KindInfo* k : AllKinds()) {
      if (k->kind == kind_name) {
        return absl::InvalidArgumentError(
            DescribeParts(kind_name, "", StringAt(object, "metadata", "name")) + ": apiVersion: " +
            internal::ShowValue(Json(api_version)) + " is not " + std::string(k->api_version));
      }
    }
    return absl::InvalidArgumentError("unknown kind " + internal::ShowValue(Json(kind_name)) +
                                      (api_version.empty() ? "" : " (apiVersion " + api_version + ")"));
  }

  Json input = object;
  if (!input.contains("metadata") || input["metadata"].is_null()) input["metadata"] = Json::object();
  std::string ns = StringAt(input, "metadata", "namespace");
  if (kind->namespaced && ns.empty() && !default_namespace.empty()) {
    ns = std::string(default_namespace);
    if (input["metadata"].is_object()) input["metadata"]["namespace"] = ns;
  }
  const std::string who = DescribeParts(kind->kind, kind->namespaced ? ns : "", StringAt(input, "metadata", "name"));
  if (!kind->namespaced && !ns.empty()) {
    return absl::InvalidArgumentError(who + ": metadata.namespace: " + internal::ShowValue(Json(ns)) +
                                      " is not allowed (" + std::string(kind->kind) + " is cluster-scoped)");
  }

  const internal::Type& type = internal::ObjectType(*kind);
  absl::StatusOr<Json> normal = internal::Normalize(input, type, "");
  if (!normal.ok()) return Prefixed(who, normal.status());
  if (!normal->contains("metadata")) (*normal)["metadata"] = Json::object();
  absl::Status valid = internal::ValidateKind(*kind, *normal);
  if (!valid.ok()) return Prefixed(who, valid);
  // Validation may add defaults (IPPool blockSize, policy types): normalise again for order.
  normal = internal::Normalize(*normal, type, "");
  if (!normal.ok()) return Prefixed(who, normal.status());

  Resource r;
  r.kind = kind;
  r.object = std::move(*normal);
  return r;
}

std::string Key(const KindInfo& kind, std::string_view ns, std::string_view name) {
  std::string key = KeyPrefix(kind, kind.namespaced ? ns : "");
  return key + std::string(name);
}

std::string KeyPrefix(const KindInfo& kind, std::string_view ns) {
  std::string_view group = kind.api_version.substr(0, kind.api_version.find('/'));
  std::string key = "/calico/resources/v3/" + std::string(group) + "/" + std::string(kind.plural) + "/";
  if (kind.namespaced && !ns.empty()) key += std::string(ns) + "/";
  return key;
}

std::string ToStored(const Resource& resource) {
  Json copy = resource.object;
  if (copy.contains("metadata")) copy["metadata"].erase("resourceVersion");
  return copy.dump(-1, ' ', false, nlohmann::detail::error_handler_t::replace);
}

absl::StatusOr<Resource> FromStored(std::string_view value, int64_t mod_revision) {
  Json object = Json::parse(value.begin(), value.end(), nullptr, /*allow_exceptions=*/false);
  if (object.is_discarded() || !object.is_object()) {
    return absl::DataLossError("stored resource is not a JSON object");
  }
  if (!object.contains("metadata") || !object["metadata"].is_object()) object["metadata"] = Json::object();
  object["metadata"]["resourceVersion"] = std::to_string(mod_revision);
  absl::StatusOr<Resource> r = FromObject(object, "");
  if (!r.ok()) return absl::DataLossError("stored resource does not validate: " + ToStd(r.status().message()));
  return r;
}

bool HasCrossObjectRules(const KindInfo& kind) { return kind.kind == "IPPool"; }

absl::Status ValidateAgainstExisting(const Resource& resource, const std::vector<Resource>& existing) {
  if (resource.kind == nullptr || resource.kind->kind != "IPPool") return absl::OkStatus();
  std::string mine = StringAt(resource.object, "spec", "cidr");
  std::optional<internal::Cidr> cidr = internal::ParseCidrOrIp(mine);
  if (!cidr) return absl::InvalidArgumentError(resource.Describe() + ": spec.cidr: invalid");
  for (const Resource& other : existing) {
    if (other.kind != resource.kind || other.Name() == resource.Name()) continue;
    std::string theirs = StringAt(other.object, "spec", "cidr");
    std::optional<internal::Cidr> o = internal::ParseCidrOrIp(theirs);
    if (o && internal::Overlaps(*cidr, *o)) {
      return absl::InvalidArgumentError(resource.Describe() + ": spec.cidr: \"" + mine + "\" overlaps " +
                                        other.Describe() + " (" + theirs + ")");
    }
  }
  return absl::OkStatus();
}

}  // namespace calico::resources
