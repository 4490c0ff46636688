#include "calicoctl/cli.h"

#include <fstream>
#include <iterator>
#include <optional>
#include <set>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "calicoctl/ipam.h"
#include "calicoctl/node.h"
#include "calicoctl/table.h"
#include "common/base/status_macros.h"
#include "common/resources/client/client.h"
#include "common/resources/resource.h"

#ifndef CALICO_VERSION
#define CALICO_VERSION "v0.0.0-dev"
#endif
#ifndef CALICO_GIT_COMMIT
#define CALICO_GIT_COMMIT "unknown"
#endif

namespace calico::calicoctl {
namespace {

using resources::Json;
using resources::KindInfo;
using resources::Resource;

constexpr const char* kUsage = R"(Usage:
  calicoctl [options] <command> [<args>...]

    create    Create resources from a file or stdin.
    replace   Replace existing resources from a file or stdin.
    apply     Create or replace resources from a file or stdin.
    delete    Delete resources named in a file, stdin, or by kind and name.
    get       Show resources by kind and optional names.
    patch     Merge-patch an existing resource.
    label     Set or remove a label of a resource.
    validate  Check resources in a file or stdin without writing them.
    ipam      IP address management: show, check, release, configure.
    node      Ask this node's daemons: `node status` (BGP peers), `node routes`, `node workloads`.
    policy    `policy explain`: which policy rule decides a packet (felixd's compiled model).
    version   Show the client version and, if reachable, the cluster's.

Options:
  -h --help                 Show this screen (or `calicoctl <command> --help`).
  -c --config=<config>      Path to a CalicoAPIConfig file. Without it the datastore comes
                            from the environment: DATASTORE_TYPE=etcdv3|embedded,
                            ETCD_ENDPOINTS, ETCD_CA_CERT_FILE, ETCD_CERT_FILE, ETCD_KEY_FILE,
                            CALICO_DATASTORE_PATH (embedded; default /var/lib/calico/calico.db).

Kinds (with aliases, case-insensitive): see `calicoctl get --help`.
)";

struct OptionSpec {
  std::string long_name;
  char short_name;  // 0 if none
  bool takes_value;
};

struct CommandSpec {
  std::string name;
  std::string usage;
  std::vector<OptionSpec> options;
};

const OptionSpec kConfigOpt{"config", 'c', true};
const OptionSpec kFileOpt{"filename", 'f', true};
const OptionSpec kNamespaceOpt{"namespace", 'n', true};
const OptionSpec kHelpOpt{"help", 'h', false};
// Accepted for compatibility with upstream scripts; this calicoctl has no version skew check.
const OptionSpec kAllowMismatchOpt{"allow-version-mismatch", 0, false};

std::string KindsHelp() {
  std::string out = "Kinds (aliases):\n";
  for (const KindInfo* kind : resources::AllKinds()) {
    std::vector<std::string> aliases(kind->aliases.begin(), kind->aliases.end());
    out += absl::StrCat("  ", ToAbsl(kind->kind));
    if (kind->api_version != "projectcalico.org/v3")
      out += absl::StrCat(" (", ToAbsl(kind->api_version), ")");
    out += absl::StrCat(": ", absl::StrJoin(aliases, ", "), "\n");
  }
  return out;
}

const std::vector<CommandSpec>& Commands() {
  static const std::vector<CommandSpec>* specs = [] {
    auto* all = new std::vector<CommandSpec>{
        {"create",
         "Usage:\n  calicoctl create --filename=<FILENAME> [--skip-exists] [--namespace=<NS>] "
         "[--config=<CONFIG>]\n\n"
         "  -f --filename=<FILENAME>  File with resources (YAML or JSON); '-' reads stdin.\n"
         "  --skip-exists             Do not fail for resources that already exist.\n"
         "  -n --namespace=<NS>       Namespace for namespaced resources that name none [default: "
         "default].\n",
         {kFileOpt,
          {"skip-exists", 0, false},
          kNamespaceOpt,
          kConfigOpt,
          kHelpOpt,
          kAllowMismatchOpt}},
        {"replace",
         "Usage:\n  calicoctl replace --filename=<FILENAME> [--namespace=<NS>] "
         "[--config=<CONFIG>]\n\n"
         "  Replaces existing resources; a resourceVersion in the file makes it a "
         "compare-and-swap.\n",
         {kFileOpt, kNamespaceOpt, kConfigOpt, kHelpOpt, kAllowMismatchOpt}},
        {"apply",
         "Usage:\n  calicoctl apply --filename=<FILENAME> [--namespace=<NS>] "
         "[--config=<CONFIG>]\n\n"
         "  Creates resources that do not exist and replaces those that do.\n",
         {kFileOpt, kNamespaceOpt, kConfigOpt, kHelpOpt, kAllowMismatchOpt}},
        {"delete",
         "Usage:\n  calicoctl delete (<KIND> <NAME>... | --filename=<FILENAME>) "
         "[--skip-not-exists] [--namespace=<NS>] [--config=<CONFIG>]\n",
         {kFileOpt,
          {"skip-not-exists", 0, false},
          kNamespaceOpt,
          kConfigOpt,
          kHelpOpt,
          kAllowMismatchOpt}},
        {"get",
         "Usage:\n  calicoctl get <KIND> [<NAME>...] [--output=<FORMAT>] [--namespace=<NS> | "
         "--all-namespaces] [--config=<CONFIG>]\n\n"
         "  -o --output=<FORMAT>   ps (default), wide, yaml or json.\n"
         "  -A --all-namespaces    All namespaces (namespaced kinds).\n",
         {{"output", 'o', true},
          kNamespaceOpt,
          {"all-namespaces", 'A', false},
          kConfigOpt,
          kHelpOpt,
          {"export", 0, false},
          kAllowMismatchOpt}},
        {"patch",
         "Usage:\n  calicoctl patch <KIND> <NAME> --patch=<PATCH> [--type=merge] "
         "[--namespace=<NS>] [--config=<CONFIG>]\n\n"
         "  -p --patch=<PATCH>  A JSON merge patch (RFC 7386), e.g. "
         "'{\"spec\":{\"disabled\":true}}'.\n",
         {{"patch", 'p', true},
          {"type", 't', true},
          kNamespaceOpt,
          kConfigOpt,
          kHelpOpt,
          kAllowMismatchOpt}},
        {"label",
         "Usage:\n  calicoctl label <KIND> <NAME> (<KEY>=<VALUE> [--overwrite] | <KEY> --remove) "
         "[--namespace=<NS>] [--config=<CONFIG>]\n",
         {{"overwrite", 0, false},
          {"remove", 0, false},
          kNamespaceOpt,
          kConfigOpt,
          kHelpOpt,
          kAllowMismatchOpt}},
        {"validate",
         "Usage:\n  calicoctl validate --filename=<FILENAME> [--namespace=<NS>]\n\n"
         "  Validates every document without touching the datastore.\n",
         {kFileOpt, kNamespaceOpt, kHelpOpt, kConfigOpt}},
        {"version",
         "Usage:\n  calicoctl version [--client] [--config=<CONFIG>]\n",
         {{"client", 0, false}, kConfigOpt, kHelpOpt, kAllowMismatchOpt}},
    };
    // `ipam` takes the union of its subcommands' options; ipam.cc checks which apply.
    CommandSpec ipam{"ipam", "", {kConfigOpt, kHelpOpt, kAllowMismatchOpt}};
    for (const IpamOption& o : IpamOptions())
      ipam.options.push_back({o.long_name, o.short_name, o.takes_value});
    all->push_back(std::move(ipam));
    all->push_back({"node", kNodeUsage, {{"felixd-socket", 0, true}, {"birdd-socket", 0, true}, {"family", 0, true}, kHelpOpt, kConfigOpt}});
    all->push_back({"policy", kPolicyUsage,
                    {{"source", 0, true}, {"destination", 0, true}, {"protocol", 0, true},
                     {"port", 0, true}, {"source-port", 0, true}, {"icmp-type", 0, true},
                     {"icmp-code", 0, true}, {"felixd-socket", 0, true}, kHelpOpt, kConfigOpt}});
    return all;
  }();
  return *specs;
}

struct Parsed {
  const CommandSpec* command = nullptr;
  std::vector<std::string> positional;
  std::map<std::string, std::string> values;
  std::set<std::string> flags;

  bool Has(const std::string& name) const { return flags.count(name) || values.count(name); }
  std::string Value(const std::string& name, const std::string& fallback = "") const {
    auto it = values.find(name);
    return it == values.end() ? fallback : it->second;
  }
};

absl::StatusOr<Parsed> ParseArgs(const std::vector<std::string>& args,
                                 std::map<std::string, std::string> globals) {
  Parsed p;
  p.values = std::move(globals);
  size_t i = 0;
  // Global options before the command: -c/--config, -h.
  for (; i < args.size() && absl::StartsWith(args[i], "-"); ++i) {
    const std::string& a = args[i];
    if (a == "-h" || a == "--help") {
      p.flags.insert("help");
    } else if (a == "-c" || a == "--config") {
      if (i + 1 >= args.size()) return absl::InvalidArgumentError("option " + a + " needs a value");
      p.values["config"] = args[++i];
    } else if (absl::StartsWith(a, "--config=")) {
      p.values["config"] = a.substr(9);
    } else if (a == "--allow-version-mismatch") {
    } else {
      return absl::InvalidArgumentError("unknown option " + a);
    }
  }
  if (i == args.size()) return p;
  for (const CommandSpec& spec : Commands()) {
    if (spec.name == args[i]) p.command = &spec;
  }
  if (p.command == nullptr)
    return absl::InvalidArgumentError("unknown command \"" + args[i] + "\"");
  ++i;
  auto find_long = [&](std::string_view name) -> const OptionSpec* {
    for (const OptionSpec& o : p.command->options)
      if (o.long_name == name) return &o;
    return nullptr;
  };
  auto find_short = [&](char c) -> const OptionSpec* {
    for (const OptionSpec& o : p.command->options)
      if (o.short_name == c) return &o;
    return nullptr;
  };
  bool only_positional = false;
  for (; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (only_positional || a == "-" || !absl::StartsWith(a, "-")) {
      p.positional.push_back(a);
      continue;
    }
    if (a == "--") {
      only_positional = true;
      continue;
    }
    const OptionSpec* opt = nullptr;
    std::optional<std::string> inline_value;
    if (absl::StartsWith(a, "--")) {
      std::string body = a.substr(2);
      size_t eq = body.find('=');
      if (eq != std::string::npos) {
        inline_value = body.substr(eq + 1);
        body = body.substr(0, eq);
      }
      opt = find_long(body);
    } else {
      opt = find_short(a[1]);
      if (opt != nullptr && a.size() > 2) inline_value = a.substr(a[2] == '=' ? 3 : 2);
    }
    if (opt == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown option ", a, " for \"", p.command->name, "\""));
    }
    if (!opt->takes_value) {
      if (inline_value)
        return absl::InvalidArgumentError("option --" + opt->long_name + " takes no value");
      p.flags.insert(opt->long_name);
      continue;
    }
    if (!inline_value) {
      if (i + 1 >= args.size())
        return absl::InvalidArgumentError("option --" + opt->long_name + " needs a value");
      inline_value = args[++i];
    }
    p.values[opt->long_name] = *inline_value;
  }
  return p;
}

class Session {
 public:
  Session(const Parsed& args, Io io, const Environment& env) : args_(args), io_(io), env_(env) {}

  int Dispatch();

 private:
  int Fail(const std::string& line) {
    io_.err << line << "\n";
    return 1;
  }
  absl::StatusOr<resources::Client*> Client();
  absl::StatusOr<std::string> ReadInput(std::string* display_name);
  std::string DefaultNamespace() const { return args_.Value("namespace", "default"); }
  absl::StatusOr<const KindInfo*> KindArg(const std::string& text) const;

  int WriteFromFile(const std::string& verb);
  int Delete();
  int Get();
  int Patch();
  int Label();
  int Validate();
  int Version();
  int Ipam();

  const Parsed& args_;
  Io io_;
  const Environment& env_;
  std::unique_ptr<datastore::Datastore> store_;
  std::unique_ptr<resources::Client> client_;
};

absl::StatusOr<resources::Client*> Session::Client() {
  if (client_ != nullptr) return client_.get();
  absl::StatusOr<datastore::Config> config = args_.values.count("config")
                                                 ? datastore::ConfigFromFile(args_.Value("config"))
                                                 : env_.config_from_env();
  if (!config.ok()) return config.status();
  absl::StatusOr<std::unique_ptr<datastore::Datastore>> store = env_.open(*config);
  if (!store.ok()) return Annotate(store.status(), "opening the datastore");
  store_ = *std::move(store);
  client_ = std::make_unique<resources::Client>(*store_);
  return client_.get();
}

absl::StatusOr<std::string> Session::ReadInput(std::string* display_name) {
  std::string file = args_.Value("filename");
  if (file.empty())
    return absl::InvalidArgumentError("a file is required: --filename=<FILE> (or - for stdin)");
  if (file == "-") {
    *display_name = "stdin";
    return std::string(std::istreambuf_iterator<char>(io_.in), std::istreambuf_iterator<char>());
  }
  *display_name = file;
  std::ifstream f(file);
  if (!f) return absl::NotFoundError("cannot read " + file + ": " + std::strerror(errno));
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

absl::StatusOr<const KindInfo*> Session::KindArg(const std::string& text) const {
  const KindInfo* kind = resources::FindKind(text);
  if (kind == nullptr) {
    return absl::InvalidArgumentError("resource type '" + text +
                                      "' is not supported (see `calicoctl get --help`)");
  }
  return kind;
}

// create / replace / apply / delete -f: each document on its own, so one bad document costs
// only itself; the summary names what was and was not done.
int Session::WriteFromFile(const std::string& verb) {
  std::string source;
  absl::StatusOr<std::string> text = ReadInput(&source);
  if (!text.ok()) return Fail(absl::StrCat("Failed to ", verb, ": ", text.status().message()));
  absl::StatusOr<std::vector<resources::ParsedDocument>> docs =
      resources::ParseDocuments(*text, DefaultNamespace());
  if (!docs.ok())
    return Fail(absl::StrCat("Failed to ", verb, " ", source, ": ", docs.status().message()));
  if (docs->empty())
    return Fail(absl::StrCat("Failed to ", verb, " ", source, ": no resources found"));

  const bool many = docs->size() > 1;
  auto where = [&](const resources::ParsedDocument& d) {
    return many ? absl::StrCat("document ", d.index, " of ", source) : source;
  };
  std::vector<std::string> done;
  std::set<std::string> kinds;
  int failed = 0, skipped = 0;
  absl::StatusOr<resources::Client*> client = absl::UnknownError("unused");
  for (const resources::ParsedDocument& doc : *docs) {
    if (!doc.resource.ok()) {
      ++failed;
      io_.err << "Failed to " << verb << " " << where(doc) << ": "
              << doc.resource.status().message() << "\n";
      continue;
    }
    const Resource& r = *doc.resource;
    if (r.kind->kind == "ClusterInformation") {
      ++failed;
      io_.err << "Failed to " << verb << " " << where(doc) << ": " << r.Describe()
              << " is written by the calico-cpp daemons, not by calicoctl\n";
      continue;
    }
    if (!client.ok() || *client == nullptr) {
      client = Client();
      if (!client.ok())
        return Fail(absl::StrCat("Failed to ", verb, ": ", client.status().message()));
    }
    absl::Status s;
    if (verb == "create") {
      s = (*client)->Create(r).status();
      if (absl::IsAlreadyExists(s) && args_.Has("skip-exists")) {
        ++skipped;
        s = absl::OkStatus();
        continue;
      }
    } else if (verb == "replace") {
      s = (*client)->Replace(r).status();
    } else if (verb == "apply") {
      s = (*client)->Apply(r).status();
    } else {  // delete
      absl::StatusOr<std::optional<int64_t>> rv = resources::ResourceVersionOf(r);
      s = rv.ok() ? (*client)->Delete(*r.kind, r.Namespace(), r.Name(), *rv).status() : rv.status();
      if (absl::IsNotFound(s) && args_.Has("skip-not-exists")) {
        ++skipped;
        continue;
      }
    }
    if (!s.ok()) {
      ++failed;
      io_.err << "Failed to " << verb << " " << where(doc) << ": " << s.message() << "\n";
      continue;
    }
    kinds.insert(std::string(r.kind->kind));
    done.push_back(many ? absl::StrCat(r.Describe(), " (document ", doc.index, ")") : r.Describe());
  }
  std::string past = verb == "apply" ? "applied" : verb == "delete" ? "deleted" : verb + "d";
  std::string what =
      kinds.size() == 1 ? absl::StrCat("'", *kinds.begin(), "' resource(s)") : "resource(s)";
  if (failed == 0) {
    io_.out << "Successfully " << past << " " << done.size() << " " << what;
    if (skipped > 0)
      io_.out << " (" << skipped
              << " skipped: " << (verb == "delete" ? "did not exist" : "already existed") << ")";
    io_.out << "\n";
    return 0;
  }
  if (!done.empty()) {
    io_.out << "Partially " << past << ": " << done.size() << " of " << docs->size() << " " << what
            << ": " << absl::StrJoin(done, ", ") << "\n";
  } else if (many) {
    io_.err << "No resources " << past << " (" << failed << " of " << docs->size() << " failed)\n";
  }
  return 1;
}

int Session::Delete() {
  if (args_.values.count("filename")) {
    if (!args_.positional.empty())
      return Fail("Failed to delete: give either --filename or <KIND> <NAME>..., not both");
    return WriteFromFile("delete");
  }
  if (args_.positional.size() < 2)
    return Fail("Failed to delete: expected <KIND> <NAME>... or --filename=<FILE>");
  absl::StatusOr<const KindInfo*> kind = KindArg(args_.positional[0]);
  if (!kind.ok()) return Fail("Failed to delete: " + std::string(kind.status().message()));
  if ((*kind)->kind == "ClusterInformation") {
    return Fail(
        "Failed to delete: ClusterInformation is written by the calico-cpp daemons, not by "
        "calicoctl");
  }
  absl::StatusOr<resources::Client*> client = Client();
  if (!client.ok()) return Fail("Failed to delete: " + std::string(client.status().message()));
  std::string ns = (*kind)->namespaced ? DefaultNamespace() : "";
  int deleted = 0, failed = 0;
  for (size_t i = 1; i < args_.positional.size(); ++i) {
    absl::Status s = (*client)->Delete(**kind, ns, args_.positional[i]).status();
    if (absl::IsNotFound(s) && args_.Has("skip-not-exists")) continue;
    if (!s.ok()) {
      ++failed;
      io_.err << "Failed to delete: " << s.message() << "\n";
      continue;
    }
    ++deleted;
  }
  if (deleted > 0 || failed == 0) {
    io_.out << "Successfully deleted " << deleted << " '" << (*kind)->kind << "' resource(s)\n";
  }
  return failed == 0 ? 0 : 1;
}

int Session::Get() {
  if (args_.positional.empty()) return Fail("Failed to get resources: expected <KIND> [<NAME>...]");
  absl::StatusOr<const KindInfo*> kind = KindArg(args_.positional[0]);
  if (!kind.ok()) return Fail("Failed to get resources: " + std::string(kind.status().message()));
  std::string format = args_.Value("output", "ps");
  if (format != "ps" && format != "wide" && format != "yaml" && format != "json") {
    return Fail("Failed to get resources: output format '" + format +
                "' is not supported (ps, wide, yaml, json)");
  }
  const bool all_ns = args_.Has("all-namespaces") && (*kind)->namespaced;
  if (all_ns && args_.values.count("namespace")) {
    return Fail("Failed to get resources: give --namespace or --all-namespaces, not both");
  }
  std::string ns = (*kind)->namespaced && !all_ns ? DefaultNamespace() : "";
  absl::StatusOr<resources::Client*> client = Client();
  if (!client.ok())
    return Fail("Failed to get resources: " + std::string(client.status().message()));

  std::vector<Resource> found;
  int failed = 0;
  const bool named = args_.positional.size() > 1;
  if (named) {
    for (size_t i = 1; i < args_.positional.size(); ++i) {
      if (all_ns) {
        // A name across all namespaces: every namespace's object of that name.
        absl::StatusOr<std::vector<Resource>> all = (*client)->List(**kind);
        if (!all.ok())
          return Fail("Failed to get resources: " + std::string(all.status().message()));
        bool any = false;
        for (Resource& r : *all) {
          if (r.Name() == args_.positional[i]) {
            found.push_back(std::move(r));
            any = true;
          }
        }
        if (!any) {
          ++failed;
          io_.err << "Failed to get resources: " << (*kind)->kind << " \"" << args_.positional[i]
                  << "\" not found in any namespace\n";
        }
        continue;
      }
      absl::StatusOr<Resource> r = (*client)->Get(**kind, ns, args_.positional[i]);
      if (!r.ok()) {
        ++failed;
        io_.err << "Failed to get resources: " << r.status().message() << "\n";
        continue;
      }
      found.push_back(*std::move(r));
    }
  } else {
    absl::StatusOr<std::vector<Resource>> all = (*client)->List(**kind, ns);
    if (!all.ok()) return Fail("Failed to get resources: " + std::string(all.status().message()));
    found = *std::move(all);
  }
  if ((*kind)->kind == "Tier") {
    // Upstream lists tiers by order (unordered last), not by name.
    std::stable_sort(found.begin(), found.end(), [](const Resource& a, const Resource& b) {
      auto order = [](const Resource& r) {
        const Json& spec = r.object.contains("spec") ? r.object["spec"] : Json();
        return spec.is_object() && spec.contains("order") && spec["order"].is_number()
                   ? spec["order"].get<double>()
                   : std::numeric_limits<double>::infinity();
      };
      return order(a) < order(b);
    });
  }

  // Named lookups of one object print it bare; listings print a List, as upstream.
  const bool as_list = !named || found.size() != 1;
  if (format == "yaml") {
    if (!found.empty() || as_list) io_.out << resources::ToYaml(found, as_list);
  } else if (format == "json") {
    if (!found.empty() || as_list) io_.out << resources::ToJson(found, as_list);
  } else {
    TableOptions options;
    options.wide = format == "wide";
    options.with_namespace = all_ns;
    if ((*kind)->kind == "Node" && options.wide) {
      const KindInfo* bgp = resources::FindKind("BGPConfiguration");
      absl::StatusOr<Resource> def =
          bgp ? (*client)->Get(*bgp, "", "default") : absl::NotFoundError("");
      if (def.ok() && def->object.contains("spec") && def->object["spec"].contains("asNumber")) {
        options.default_as_number = def->object["spec"]["asNumber"].dump();
      }
    }
    std::vector<std::vector<std::string>> rows;
    for (const Resource& r : found) rows.push_back(Row(r, options));
    PrintTable(io_.out, Headings(**kind, options), rows);
  }
  return failed == 0 ? 0 : 1;
}

// RFC 7386 JSON merge patch.
void MergePatch(Json& target, const Json& patch) {
  if (!patch.is_object()) {
    target = patch;
    return;
  }
  if (!target.is_object()) target = Json::object();
  for (auto it = patch.begin(); it != patch.end(); ++it) {
    if (it.value().is_null()) {
      target.erase(it.key());
    } else {
      MergePatch(target[it.key()], it.value());
    }
  }
}

int Session::Patch() {
  if (args_.positional.size() != 2)
    return Fail("Failed to patch: expected <KIND> <NAME> --patch=<PATCH>");
  if (!args_.values.count("patch")) return Fail("Failed to patch: --patch=<PATCH> is required");
  std::string type = args_.Value("type", "merge");
  if (type != "merge")
    return Fail("Failed to patch: patch type '" + type + "' is not supported (merge)");
  absl::StatusOr<const KindInfo*> kind = KindArg(args_.positional[0]);
  if (!kind.ok()) return Fail("Failed to patch: " + std::string(kind.status().message()));
  if ((*kind)->kind == "ClusterInformation") {
    return Fail(
        "Failed to patch: ClusterInformation is written by the calico-cpp daemons, not by "
        "calicoctl");
  }
  Json patch = Json::parse(args_.Value("patch"), nullptr, /*allow_exceptions=*/false);
  if (patch.is_discarded() || !patch.is_object()) {
    return Fail("Failed to patch: --patch is not a JSON object: " + args_.Value("patch"));
  }
  if (patch.contains("metadata") && patch["metadata"].is_object() &&
      (patch["metadata"].contains("name") || patch["metadata"].contains("namespace"))) {
    return Fail("Failed to patch: a patch cannot change metadata.name or metadata.namespace");
  }
  absl::StatusOr<resources::Client*> client = Client();
  if (!client.ok()) return Fail("Failed to patch: " + std::string(client.status().message()));
  std::string ns = (*kind)->namespaced ? DefaultNamespace() : "";
  absl::StatusOr<Resource> current = (*client)->Get(**kind, ns, args_.positional[1]);
  if (!current.ok()) return Fail("Failed to patch: " + std::string(current.status().message()));
  Json object = current->object;
  MergePatch(object, patch);
  // The resourceVersion read above stays in the object: the write is a compare-and-swap.
  absl::StatusOr<Resource> patched = resources::FromObject(object, ns);
  if (!patched.ok()) return Fail("Failed to patch: " + std::string(patched.status().message()));
  absl::StatusOr<Resource> stored = (*client)->Replace(*patched);
  if (!stored.ok()) return Fail("Failed to patch: " + std::string(stored.status().message()));
  io_.out << "Successfully patched 1 '" << (*kind)->kind << "' resource\n";
  return 0;
}

int Session::Label() {
  if (args_.positional.size() != 3) {
    return Fail("Failed to label: expected <KIND> <NAME> <KEY>=<VALUE> (or <KEY> --remove)");
  }
  absl::StatusOr<const KindInfo*> kind = KindArg(args_.positional[0]);
  if (!kind.ok()) return Fail("Failed to label: " + std::string(kind.status().message()));
  if ((*kind)->kind == "ClusterInformation") {
    return Fail(
        "Failed to label: ClusterInformation is written by the calico-cpp daemons, not by "
        "calicoctl");
  }
  const std::string& spec = args_.positional[2];
  const bool remove = args_.Has("remove");
  std::string key = spec, value;
  size_t eq = spec.find('=');
  if (eq != std::string::npos) {
    key = spec.substr(0, eq);
    value = spec.substr(eq + 1);
  }
  if (remove && eq != std::string::npos)
    return Fail("Failed to label: --remove takes a key, not key=value");
  if (!remove && eq == std::string::npos)
    return Fail("Failed to label: expected <KEY>=<VALUE>, got \"" + spec + "\"");
  if (key.empty()) return Fail("Failed to label: the label key is empty");

  absl::StatusOr<resources::Client*> client = Client();
  if (!client.ok()) return Fail("Failed to label: " + std::string(client.status().message()));
  std::string ns = (*kind)->namespaced ? DefaultNamespace() : "";
  absl::StatusOr<Resource> current = (*client)->Get(**kind, ns, args_.positional[1]);
  if (!current.ok()) return Fail("Failed to label: " + std::string(current.status().message()));
  Json object = current->object;
  Json& labels = object["metadata"]["labels"];
  if (labels.is_null()) labels = Json::object();
  if (remove) {
    if (!labels.contains(key)) {
      return Fail("Failed to label: " + current->Describe() + " has no label " + key);
    }
    labels.erase(key);
    if (labels.empty()) object["metadata"].erase("labels");
  } else {
    if (labels.contains(key) && !args_.Has("overwrite")) {
      return Fail("Failed to label: " + current->Describe() + " already has label " + key +
                  "; use --overwrite to set a new value");
    }
    labels[key] = value;
  }
  absl::StatusOr<Resource> updated = resources::FromObject(object, ns);
  if (!updated.ok()) return Fail("Failed to label: " + std::string(updated.status().message()));
  absl::StatusOr<Resource> stored = (*client)->Replace(*updated);
  if (!stored.ok()) return Fail("Failed to label: " + std::string(stored.status().message()));
  if (remove) {
    io_.out << "Successfully removed label " << key << " from " << args_.positional[0] << " "
            << args_.positional[1] << "\n";
  } else {
    io_.out << "Successfully set label " << key << " on " << args_.positional[0] << " "
            << args_.positional[1] << "\n";
  }
  return 0;
}

int Session::Validate() {
  std::string source;
  absl::StatusOr<std::string> text = ReadInput(&source);
  if (!text.ok()) return Fail("Failed to validate: " + std::string(text.status().message()));
  absl::StatusOr<std::vector<resources::ParsedDocument>> docs =
      resources::ParseDocuments(*text, DefaultNamespace());
  if (!docs.ok())
    return Fail(absl::StrCat("Failed to validate ", source, ": ", docs.status().message()));
  int failed = 0;
  for (const resources::ParsedDocument& doc : *docs) {
    if (doc.resource.ok()) continue;
    ++failed;
    io_.err << "Failed to validate "
            << (docs->size() > 1 ? absl::StrCat("document ", doc.index, " of ", source) : source)
            << ": " << doc.resource.status().message() << "\n";
  }
  if (failed > 0) return 1;
  io_.out << "Successfully validated " << docs->size() << " resource(s)\n";
  return 0;
}

int Session::Version() {
  io_.out << "Client Version:    " << CALICO_VERSION << "\n";
  io_.out << "Git commit:        " << CALICO_GIT_COMMIT << "\n";
  if (args_.Has("client")) return 0;
  absl::StatusOr<resources::Client*> client = Client();
  const KindInfo* info = resources::FindKind("ClusterInformation");
  absl::StatusOr<Resource> cluster = !client.ok() ? absl::Status(client.status())
                                     : info == nullptr
                                         ? absl::NotFoundError("ClusterInformation unknown")
                                         : (*client)->Get(*info, "", "default");
  if (!cluster.ok()) {
    io_.out << "Cluster Version:   unknown\n";
    io_.out << "Cluster Type:      unknown\n";
    if (!absl::IsNotFound(cluster.status())) {
      return Fail("Unable to read the cluster version: " + std::string(cluster.status().message()));
    }
    return 0;
  }
  const Json& spec = cluster->object.contains("spec") ? cluster->object["spec"] : Json::object();
  auto str = [&](const char* f) {
    return spec.contains(f) && spec[f].is_string() ? spec[f].get<std::string>() : "unknown";
  };
  io_.out << "Cluster Version:   " << str("calicoVersion") << "\n";
  io_.out << "Cluster Type:      " << str("clusterType") << "\n";
  return 0;
}

int Session::Ipam() {
  IpamArgs args{args_.positional, args_.values, args_.flags};
  IpamConnect connect = [this]() -> absl::StatusOr<IpamConnection> {
    absl::StatusOr<resources::Client*> client = Client();
    if (!client.ok()) return client.status();
    return IpamConnection{store_.get(), *client};
  };
  return RunIpam(args, io_, connect);
}

int Session::Dispatch() {
  if (args_.command == nullptr) {
    if (args_.Has("help")) {
      io_.out << kUsage;
      return 0;
    }
    io_.err << kUsage;
    return 1;
  }
  const std::string& name = args_.command->name;
  if (name == "ipam") return Ipam();  // its help is per subcommand
  if (name == "node") return RunNode({args_.positional, args_.values, args_.flags}, io_.out, io_.err);
  if (name == "policy") return RunPolicy({args_.positional, args_.values, args_.flags}, io_.out, io_.err);
  if (args_.Has("help")) {
    io_.out << args_.command->usage;
    if (name == "get" || name == "delete" || name == "label" || name == "patch")
      io_.out << "\n" << KindsHelp();
    return 0;
  }
  if (name == "create" || name == "replace" || name == "apply") {
    if (!args_.positional.empty()) {
      return Fail("Failed to " + name + ": unexpected argument \"" + args_.positional[0] +
                  "\" (use --filename)");
    }
    return WriteFromFile(name);
  }
  if (name == "delete") return Delete();
  if (name == "get") return Get();
  if (name == "patch") return Patch();
  if (name == "label") return Label();
  if (name == "validate") return Validate();
  return Version();
}

}  // namespace

int Run(const std::vector<std::string>& args, Io io, const Environment& env) {
  absl::StatusOr<Parsed> parsed = ParseArgs(args, {});
  if (!parsed.ok()) {
    io.err << "Invalid arguments: " << parsed.status().message() << " (see calicoctl --help)\n";
    return 1;
  }
  Session session(*parsed, io, env);
  return session.Dispatch();
}

}  // namespace calico::calicoctl
