#include "common/resources/client/client.h"

#include <cstdio>
#include <ctime>
#include <random>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"

namespace calico::resources {
namespace {

using datastore::Revision;

// Replace retries only when it was not given a resourceVersion: then the caller asked for
// "last writer wins", and a concurrent write in between is not a conflict they care about.
constexpr int kMaxUnconditionalAttempts = 5;

std::string NewUid() {
  std::random_device rd;
  std::mt19937_64 gen((static_cast<uint64_t>(rd()) << 32) ^ rd());
  uint64_t hi = gen(), lo = gen();
  hi = (hi & ~0xf000ULL) | 0x4000ULL;              // version 4
  lo = (lo & ~(0xc0ULL << 56)) | (0x80ULL << 56);  // RFC 4122 variant
  char buf[40];
  std::snprintf(buf, sizeof buf, "%08x-%04x-%04x-%04x-%012llx", static_cast<unsigned>(hi >> 32),
                static_cast<unsigned>((hi >> 16) & 0xffff), static_cast<unsigned>(hi & 0xffff),
                static_cast<unsigned>(lo >> 48),
                static_cast<unsigned long long>(lo & 0xffffffffffffULL));
  return buf;
}

std::string NowRfc3339() {
  std::time_t now = std::time(nullptr);
  std::tm tm;
  gmtime_r(&now, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// Re-canonicalizes after metadata edits so field order stays the schema's.
absl::StatusOr<Resource> WithServerMetadata(const Resource& resource, const std::string& uid,
                                            const std::string& created) {
  Json object = resource.object;
  Json& meta = object["metadata"];
  meta.erase("resourceVersion");
  meta["uid"] = uid;
  meta["creationTimestamp"] = created;
  return FromObject(object, resource.Namespace());
}

std::string MetaString(const Resource& r, const char* field) {
  auto meta = r.object.find("metadata");
  if (meta == r.object.end() || !meta->is_object()) return "";
  auto it = meta->find(field);
  if (it == meta->end() || !it->is_string()) return "";
  return it->get<std::string>();
}

// Fields that address space or allocations depend on cannot change in place (as upstream):
// blocks already carved from a pool would no longer match it.
absl::Status CheckImmutable(const Resource& current, const Resource& next) {
  if (current.kind->kind != "IPPool") return absl::OkStatus();
  for (const char* field : {"cidr", "blockSize"}) {
    Json a = current.object.value("spec", Json::object()).value(field, Json());
    Json b = next.object.value("spec", Json::object()).value(field, Json());
    if (a != b) {
      return absl::InvalidArgumentError(
          absl::StrCat(next.Describe(), ": spec.", field, ": cannot be changed (", a.dump(), " to ",
                       b.dump(), "); create a new pool and disable this one"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::optional<int64_t>> ResourceVersionOf(const Resource& resource) {
  std::string rv = MetaString(resource, "resourceVersion");
  if (rv.empty()) return std::optional<int64_t>();
  int64_t value = 0;
  if (!absl::SimpleAtoi(rv, &value) || value <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(resource.Describe(),
                                                   ": metadata.resourceVersion: \"", rv,
                                                   "\" is not a revision this datastore issued"));
  }
  return std::optional<int64_t>(value);
}

absl::StatusOr<Resource> Client::Get(const KindInfo& kind, std::string_view ns,
                                     std::string_view name) {
  std::string key = Key(kind, ns, name);
  absl::StatusOr<datastore::Entry> entry = store_.Get(key);
  if (absl::IsNotFound(entry.status())) {
    std::string id = ns.empty() ? std::string(name) : absl::StrCat(ToAbsl(ns), "/", ToAbsl(name));
    return absl::NotFoundError(absl::StrCat(ToAbsl(kind.kind), " \"", id, "\" not found"));
  }
  if (!entry.ok()) return entry.status();
  absl::StatusOr<Resource> r = FromStored(entry->value, entry->mod_revision);
  if (!r.ok()) return Annotate(r.status(), "decoding " + key);
  return r;
}

absl::StatusOr<std::vector<Resource>> Client::List(const KindInfo& kind, std::string_view ns) {
  ASSIGN_OR_RETURN(datastore::ListResult listed, store_.List(KeyPrefix(kind, ns)));
  std::vector<Resource> out;
  out.reserve(listed.entries.size());
  for (const datastore::Entry& entry : listed.entries) {
    absl::StatusOr<Resource> r = FromStored(entry.value, entry.mod_revision);
    if (!r.ok()) return Annotate(r.status(), "decoding " + entry.key);
    out.push_back(*std::move(r));
  }
  // Keys sort by namespace then name already, since both are key segments.
  return out;
}

absl::Status Client::CheckAgainstOthers(const Resource& resource) {
  // Listing every object of the kind made each WorkloadEndpoint write O(endpoints).
  if (!HasCrossObjectRules(*resource.kind)) return absl::OkStatus();
  ASSIGN_OR_RETURN(std::vector<Resource> others, List(*resource.kind));
  std::vector<Resource> filtered;
  for (Resource& other : others) {
    if (other.Name() == resource.Name() && other.Namespace() == resource.Namespace()) continue;
    filtered.push_back(std::move(other));
  }
  return ValidateAgainstExisting(resource, filtered);
}

absl::StatusOr<Resource> Client::Write(const Resource& resource, const Resource* existing,
                                       Revision expected) {
  std::string uid = existing != nullptr ? MetaString(*existing, "uid") : NewUid();
  std::string created =
      existing != nullptr ? MetaString(*existing, "creationTimestamp") : NowRfc3339();
  ASSIGN_OR_RETURN(Resource stored, WithServerMetadata(resource, uid, created));
  std::string key = Key(stored);
  std::string value = ToStored(stored);
  absl::StatusOr<Revision> rev =
      existing == nullptr ? store_.Create(key, value) : store_.Update(key, value, expected);
  if (!rev.ok()) return rev.status();
  stored.object["metadata"]["resourceVersion"] = std::to_string(*rev);
  return FromObject(stored.object, stored.Namespace());
}

absl::StatusOr<Resource> Client::Create(const Resource& resource) {
  RETURN_IF_ERROR(CheckAgainstOthers(resource));
  absl::StatusOr<Resource> out = Write(resource, nullptr, 0);
  if (absl::IsAlreadyExists(out.status())) {
    return absl::AlreadyExistsError(resource.Describe() + " already exists");
  }
  return out;
}

absl::StatusOr<Resource> Client::Replace(const Resource& resource) {
  ASSIGN_OR_RETURN(std::optional<int64_t> wanted, ResourceVersionOf(resource));
  for (int attempt = 1;; ++attempt) {
    // Existence first: "not found" is the answer for a missing object, whatever else is wrong.
    ASSIGN_OR_RETURN(Resource current, Get(*resource.kind, resource.Namespace(), resource.Name()));
    RETURN_IF_ERROR(CheckImmutable(current, resource));
    if (attempt == 1) RETURN_IF_ERROR(CheckAgainstOthers(resource));
    ASSIGN_OR_RETURN(std::optional<int64_t> current_rv, ResourceVersionOf(current));
    Revision expected = current_rv.value_or(0);
    if (wanted.has_value() && *wanted != expected) {
      return absl::AbortedError(absl::StrCat(resource.Describe(), " was modified: resourceVersion ",
                                             *wanted, " is now ", expected,
                                             "; get it again and retry"));
    }
    absl::StatusOr<Resource> out = Write(resource, &current, expected);
    if (absl::IsNotFound(out.status())) {
      return absl::NotFoundError(resource.Describe() + " not found");
    }
    if (absl::IsAborted(out.status()) && !wanted.has_value() &&
        attempt < kMaxUnconditionalAttempts) {
      continue;
    }
    if (absl::IsAborted(out.status())) {
      return absl::AbortedError(
          absl::StrCat(resource.Describe(), " was modified concurrently; get it again and retry"));
    }
    return out;
  }
}

absl::StatusOr<Resource> Client::Apply(const Resource& resource) {
  for (int attempt = 1;; ++attempt) {
    absl::StatusOr<Resource> created = Create(resource);
    if (!absl::IsAlreadyExists(created.status())) return created;
    absl::StatusOr<Resource> replaced = Replace(resource);
    // Deleted between our create and replace: start over.
    if (absl::IsNotFound(replaced.status()) && attempt < kMaxUnconditionalAttempts) continue;
    return replaced;
  }
}

absl::StatusOr<Resource> Client::Delete(const KindInfo& kind, std::string_view ns,
                                        std::string_view name,
                                        std::optional<int64_t> resource_version) {
  ASSIGN_OR_RETURN(Resource current, Get(kind, ns, name));
  ASSIGN_OR_RETURN(std::optional<int64_t> current_rv, ResourceVersionOf(current));
  Revision expected = resource_version.value_or(datastore::kAnyRevision);
  if (resource_version.has_value() && current_rv != resource_version) {
    return absl::AbortedError(absl::StrCat(current.Describe(), " was modified: resourceVersion ",
                                           *resource_version, " is now ", current_rv.value_or(0)));
  }
  absl::StatusOr<Revision> rev = store_.Delete(Key(current), expected);
  if (absl::IsNotFound(rev.status())) return absl::NotFoundError(current.Describe() + " not found");
  if (absl::IsAborted(rev.status())) {
    return absl::AbortedError(current.Describe() +
                              " was modified concurrently; get it again and retry");
  }
  if (!rev.ok()) return rev.status();
  return current;
}

}  // namespace calico::resources
