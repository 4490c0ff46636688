#include "ipamd/allocator/allocator.h"

// How the pieces fit:
//  - Every block write goes through a BlockSlot: a per-block queue with group commit. The first
//    request to arrive becomes the writer; requests arriving while it writes queue up and the
//    next writer applies them all to one copy of the block and writes it with one CAS. An op
//    that cannot apply (block full, address taken, stale release) fails alone; the rest commit.
//    On Aborted the writer re-reads and re-applies every op from scratch (ops are pure functions
//    of the block), up to max_cas_attempts.
//  - A block write and the handle records it changes are ONE Datastore::Commit: the block (CAS
//    on its revision) plus, for every handle whose address count in the block changed, a
//    create / update / delete of its record (CAS on the record's revision; a create requires
//    absence). The record's count for the block is set to what the new block holds, so a merged
//    batch carries one op per distinct handle, with the changes of all its requests combined.
//    There is no window in which a block holds an allocation its handle record lacks.
//  - The slot keeps the last value and mod revision it read or wrote, and the handle cache the
//    records this process last wrote, so the affine fast path is one Commit with no read (a
//    handle new to the block is guessed absent) — if another process wrote meanwhile, the CAS
//    says so, and the retry re-reads the block and every handle involved.
//  - The node's confirmed affine blocks are cached per node; claim and borrow re-list first.
//
// Crashed claims and deletions (documented in allocator.h's invariants, repaired here):
//  - A claim writes affinity(pending) → block (CAS create) → affinity(confirmed). When this
//    allocator (re)loads a node's affinities it settles leftovers: a pending or pendingDeletion
//    affinity whose block exists and is affine to the node is confirmed; one whose block does
//    not exist (or belongs elsewhere) is deleted (CAS on its revision). A concurrent claim by
//    another process for the same node that loses its pending key this way recreates it as
//    confirmed after creating the block, so no claim is lost. No clock is involved: an
//    affinity key is written only by its own node's allocator (and operator tools).
//  - Releasing an empty block writes affinity(pendingDeletion) → deletes the block (CAS on the
//    revision at which it was seen empty, so a concurrent allocation wins and the affinity goes
//    back to confirmed) → deletes the affinity.

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <random>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/base/status_macros.h"
#include "common/log/log.h"
#include "common/resources/selector/selector.h"

namespace calico::ipamd {
namespace {

using datastore::Entry;
using datastore::Revision;

std::string HostAffinity(std::string_view node) { return absl::StrCat("host:", ToAbsl(node)); }
std::string Cidr(const net::Prefix& p) { return net::FormatCidr(p); }
std::string Ip(const net::IpAddress& ip) { return net::FormatIp(ip); }

// A handle record as last written or read (revision: its mod_revision then).
struct HandleState {
  bool exists = false;
  Handle record;
  Revision revision = 0;
};

// A batch-able change of one block. `apply` must be a pure function of the block it is given
// (it is re-run after a CAS conflict): it mutates the block and records its outputs, or returns
// an error, in which case its changes are discarded and the rest of the batch still commits.
struct BlockOp {
  std::function<absl::Status(Block&)> apply;
  bool want_after = false;  // copy the committed block into `after` (release → empty check)
  absl::Status result;
  std::optional<Block> after;
  Revision after_revision = 0;
  // The handle records the committed write changed, as they now stand (every op of a batch
  // gets the batch's whole set).
  std::map<std::string, HandleState> handles_after;
  bool done = false;
};

// Address count per handle in a block (allocations without a handle are not recorded anywhere).
std::map<std::string, int> HandleCounts(const Block& block) {
  std::map<std::string, int> counts;
  for (const std::optional<int>& a : block.allocations) {
    if (!a || *a < 0 || *a >= static_cast<int>(block.attributes.size())) continue;
    const std::string& id = block.attributes[*a].handle_id;
    if (!id.empty()) ++counts[id];
  }
  return counts;
}

// A merged block write carries one handle op per distinct handle (up to 2 etcd compares each);
// etcd refuses a Txn of more than --max-txn-ops (default 128) compares, so batches stay well
// below that.
constexpr size_t kMaxBatch = 32;

}  // namespace

struct BlockSlot {
  explicit BlockSlot(const net::Prefix& c) : cidr(c), key(BlockKey(c)) {}
  const net::Prefix cidr;
  const std::string key;

  std::mutex mu;
  std::condition_variable cv;
  bool writing = false;  // a thread holds the writer role
  std::deque<BlockOp*> queue;
  // The last value seen, valid when `known`; written only by the writer (under `mu`).
  bool known = false;
  std::optional<Block> block;  // nullopt: absent (or deleted) when last read
  Revision revision = 0;
};

class AllocatorState {
 public:
  std::mutex mu;
  std::map<net::Prefix, std::shared_ptr<BlockSlot>> slots;
  // node → confirmed affine block CIDRs, loaded (and settled) on first use / on refresh.
  std::map<std::string, std::set<net::Prefix>> affine;
  std::map<std::string, std::shared_ptr<const resources::selector::Selector>> selectors;
  // Handle records this process last wrote (present, revision known): the next block write
  // touching the handle and ReleaseByHandle skip reading them. Every use is a CAS on the
  // cached revision, so a record changed by another process only costs a conflict and a read.
  std::map<std::string, HandleState> handles;
  static constexpr size_t kMaxCachedHandles = 1 << 16;

  void CacheHandle(const std::string& id, const HandleState& h) {
    std::lock_guard<std::mutex> l(mu);
    if (!h.exists || h.revision == 0) {
      handles.erase(id);
      return;
    }
    if (handles.size() >= kMaxCachedHandles) handles.clear();  // pods that never leave
    handles[id] = h;
  }
  void ForgetHandle(const std::string& id) {
    std::lock_guard<std::mutex> l(mu);
    handles.erase(id);
  }
  std::optional<HandleState> CachedHandle(const std::string& id) {
    std::lock_guard<std::mutex> l(mu);
    auto it = handles.find(id);
    if (it == handles.end()) return std::nullopt;
    return it->second;
  }

  std::mt19937_64 rng{std::random_device{}()};

  std::shared_ptr<BlockSlot> Slot(const net::Prefix& cidr) {
    std::lock_guard<std::mutex> l(mu);
    std::shared_ptr<BlockSlot>& s = slots[cidr];
    if (!s) s = std::make_shared<BlockSlot>(cidr);
    return s;
  }
  // Snapshot of the cached affine set; nullopt if not loaded.
  std::optional<std::set<net::Prefix>> Affine(const std::string& node) {
    std::lock_guard<std::mutex> l(mu);
    auto it = affine.find(node);
    if (it == affine.end()) return std::nullopt;
    return it->second;
  }
  void AddAffine(const std::string& node, const net::Prefix& cidr) {
    std::lock_guard<std::mutex> l(mu);
    auto it = affine.find(node);
    if (it != affine.end()) it->second.insert(cidr);
  }
  void RemoveAffine(const std::string& node, const net::Prefix& cidr) {
    std::lock_guard<std::mutex> l(mu);
    auto it = affine.find(node);
    if (it != affine.end()) it->second.erase(cidr);
  }
  uint64_t Random() {
    std::lock_guard<std::mutex> l(mu);
    return rng();
  }
};

namespace {

// Holds a slot's writer role for its lifetime; queued ops wait meanwhile.
class WriterRole {
 public:
  explicit WriterRole(BlockSlot& slot) : slot_(slot) {
    std::unique_lock<std::mutex> l(slot_.mu);
    slot_.cv.wait(l, [&] { return !slot_.writing; });
    slot_.writing = true;
  }
  ~WriterRole() {
    std::lock_guard<std::mutex> l(slot_.mu);
    slot_.writing = false;
    slot_.cv.notify_all();
  }

 private:
  BlockSlot& slot_;
};

// Reads the block (writer role held) and caches it. nullopt: absent.
absl::StatusOr<std::pair<std::optional<Block>, Revision>> Fetch(datastore::Datastore& store,
                                                                BlockSlot& slot) {
  absl::StatusOr<Entry> e = store.Get(slot.key);
  std::optional<Block> block;
  Revision rev = 0;
  if (e.ok()) {
    absl::StatusOr<Block> b = DecodeBlock(e->value);
    if (!b.ok()) return Annotate(b.status(), slot.key);
    block = std::move(*b);
    rev = e->mod_revision;
  } else if (!absl::IsNotFound(e.status())) {
    return Annotate(e.status(), absl::StrCat("reading block ", Cidr(slot.cidr)));
  }
  std::lock_guard<std::mutex> l(slot.mu);
  slot.known = true;
  slot.block = block;
  slot.revision = rev;
  return std::make_pair(std::move(block), rev);
}

// The cached value or a fresh read (writer role held).
absl::StatusOr<std::pair<std::optional<Block>, Revision>> Current(datastore::Datastore& store,
                                                                  BlockSlot& slot) {
  {
    std::lock_guard<std::mutex> l(slot.mu);
    if (slot.known) return std::make_pair(slot.block, slot.revision);
  }
  return Fetch(store, slot);
}

// Drops the cached value: the next write re-reads.
void Forget(BlockSlot& slot) {
  std::lock_guard<std::mutex> l(slot.mu);
  slot.known = false;
}

// The state of handle `id` for a write of the block: cached, guessed absent (`guess_absent`:
// the handle held nothing in this block, so it is most likely new), or read.
absl::StatusOr<HandleState> ResolveHandle(datastore::Datastore& store, AllocatorState& state,
                                          const std::string& id, bool use_cache,
                                          bool guess_absent) {
  if (use_cache) {
    if (std::optional<HandleState> cached = state.CachedHandle(id)) return *cached;
    if (guess_absent) return HandleState{};
  }
  absl::StatusOr<Entry> e = store.Get(HandleKey(id));
  if (absl::IsNotFound(e.status())) return HandleState{};
  if (!e.ok()) return Annotate(e.status(), absl::StrCat("reading handle ", id));
  absl::StatusOr<Handle> h = DecodeHandle(e->value);
  if (!h.ok()) return Annotate(h.status(), HandleKey(id));
  h->handle_id = id;
  return HandleState{true, std::move(*h), e->mod_revision};
}

// The writer's job: apply the batch to one copy of the block, and write it together with the
// handle records it changes in one Commit (block CAS + handle CAS / create / delete).
void WriteBatch(datastore::Datastore& store, AllocatorState& state, BlockSlot& slot,
                const std::vector<BlockOp*>& batch, int max_attempts) {
  auto fail_all = [&](const absl::Status& s) {
    for (BlockOp* op : batch) op->result = s;
  };
  const std::string cidr_text = Cidr(slot.cidr);
  // The block value the previous attempt tried to write and the handle records it wrote with
  // it. An Aborted Commit may still have landed: a client that fails over after a lost reply
  // repeats the Txn, and the repeat reports the conflict with itself. If the re-read block is
  // exactly what we wrote, it did land (Commit is atomic: the handle ops too); re-applying
  // would allocate (or free) a second time.
  std::optional<std::string> attempted;
  std::map<std::string, HandleState> attempted_handles;
  for (int attempt = 0; attempt < max_attempts; ++attempt) {
    absl::StatusOr<std::pair<std::optional<Block>, Revision>> current = Current(store, slot);
    if (!current.ok()) return fail_all(current.status());
    auto& [block, rev] = *current;
    if (attempted && block && EncodeBlock(*block) == *attempted) {
      // Landed. Handle revisions are unknown (0): users re-read them, nothing caches them.
      for (auto& [id, h] : attempted_handles) h.revision = 0;
      std::lock_guard<std::mutex> l(slot.mu);
      for (BlockOp* op : batch) {
        if (op->want_after) op->after = *block;
        op->after_revision = rev;
        op->handles_after = attempted_handles;
      }
      return;
    }
    attempted.reset();
    if (!block || block->deleted) {
      Forget(slot);  // absence is never trusted from cache: re-read next time
      return fail_all(
          absl::NotFoundError(absl::StrCat("block ", Cidr(slot.cidr), " does not exist")));
    }
    Block working = *block;
    ++working.sequence_number;
    bool changed = false;
    for (BlockOp* op : batch) {
      Block trial = working;
      op->result = op->apply(trial);
      if (op->result.ok() && !(trial == working)) {
        working = std::move(trial);
        changed = true;
      }
    }
    if (!changed) {
      // Nothing to write (every op failed or was a no-op); report the block as it stands.
      for (BlockOp* op : batch) {
        if (op->want_after) op->after = *block;
        op->after_revision = rev;
      }
      return;
    }

    // The handle ops: every handle whose count in this block changed gets its record's count
    // for the block set to the new count (0 removes the block; an empty record is deleted).
    const std::map<std::string, int> before = HandleCounts(*block);
    const std::map<std::string, int> after = HandleCounts(working);
    std::map<std::string, int> changed_handles;
    for (const auto& [id, n] : after) {
      auto it = before.find(id);
      if (it == before.end() || it->second != n) changed_handles[id] = n;
    }
    for (const auto& [id, n] : before) {
      if (!after.count(id)) changed_handles[id] = 0;
    }
    std::vector<datastore::TxnOp> ops;
    std::vector<std::string> op_handles;  // handle of ops[i]
    std::map<std::string, HandleState> handles_after;
    absl::Status resolve_error;
    for (const auto& [id, n] : changed_handles) {
      // Only the first attempt trusts the cache and the "new handle" guess: after a conflict
      // we do not know which key was stale, so everything is read.
      absl::StatusOr<HandleState> h =
          ResolveHandle(store, state, id, attempt == 0, /*guess_absent=*/!before.count(id));
      if (!h.ok()) {
        resolve_error = h.status();
        break;
      }
      HandleState next{true, h->exists ? h->record : Handle{id, {}, false}, 0};
      if (n > 0) {
        next.record.blocks[cidr_text] = n;
      } else {
        next.record.blocks.erase(cidr_text);
      }
      if (h->exists && next.record == h->record) {
        handles_after[id] = *h;  // already says so (e.g. repaired data of an older version)
        continue;
      }
      const std::string key = HandleKey(id);
      if (!h->exists) {
        if (next.record.blocks.empty()) continue;  // nothing to record, nothing to delete
        ops.push_back(datastore::TxnOp::Create(key, EncodeHandle(next.record)));
      } else if (next.record.blocks.empty()) {
        next.exists = false;
        ops.push_back(datastore::TxnOp::Delete(key, h->revision));
      } else {
        ops.push_back(datastore::TxnOp::Update(key, EncodeHandle(next.record), h->revision));
      }
      op_handles.push_back(id);
      handles_after[id] = std::move(next);
    }
    if (!resolve_error.ok()) return fail_all(resolve_error);
    ops.push_back(datastore::TxnOp::Update(slot.key, EncodeBlock(working), rev));

    absl::StatusOr<std::vector<Revision>> revisions = store.Commit(ops);
    if (revisions.ok()) {
      // Handle ops come first, in op_handles order; the block op is last.
      for (size_t i = 0; i < op_handles.size(); ++i) {
        HandleState& h = handles_after[op_handles[i]];
        h.revision = h.exists ? (*revisions)[i] : 0;
        state.CacheHandle(op_handles[i], h);
      }
      const Revision block_revision = revisions->back();
      std::lock_guard<std::mutex> l(slot.mu);
      for (BlockOp* op : batch) {
        if (op->want_after) op->after = working;
        op->after_revision = block_revision;
        op->handles_after = handles_after;
      }
      slot.known = true;
      slot.block = std::move(working);
      slot.revision = block_revision;
      return;
    }
    // Nothing was written (or, after Unavailable, maybe all of it): trust no cached value.
    Forget(slot);
    for (const auto& [id, n] : changed_handles) state.ForgetHandle(id);
    if (absl::IsAborted(revisions.status())) {
      // Block or handle changed (or our own write landed: see `attempted`): re-read, re-apply.
      attempted = ops.back().value;
      attempted_handles = std::move(handles_after);
      continue;
    }
    return fail_all(Annotate(revisions.status(),
                             absl::StrCat("writing block ", Cidr(slot.cidr), " and its handles")));
  }
  log::Warn("block_cas_exhausted", {{"cidr", Cidr(slot.cidr)},
                                    {"attempts", std::to_string(max_attempts)}});
  fail_all(absl::AbortedError(absl::StrCat("block ", Cidr(slot.cidr), ": ", max_attempts,
                                           " conflicting writes in a row; try again")));
}

// Queues `op` on the slot and returns once a writer (maybe this thread) has committed it.
absl::Status RunOp(datastore::Datastore& store, AllocatorState& state, BlockSlot& slot, BlockOp& op,
                   int max_attempts) {
  std::unique_lock<std::mutex> l(slot.mu);
  slot.queue.push_back(&op);
  while (!op.done) {
    if (slot.writing) {
      slot.cv.wait(l);
      continue;
    }
    slot.writing = true;
    const size_t n = std::min(slot.queue.size(), kMaxBatch);
    std::vector<BlockOp*> batch(slot.queue.begin(), slot.queue.begin() + n);
    slot.queue.erase(slot.queue.begin(), slot.queue.begin() + n);
    l.unlock();
    WriteBatch(store, state, slot, batch, max_attempts);
    l.lock();
    for (BlockOp* b : batch) b->done = true;
    slot.writing = false;
    slot.cv.notify_all();
  }
  return op.result;
}

struct Env {
  std::vector<Pool> pools;
  IpamConfig config;
  std::vector<net::Prefix> reservations;
};

absl::StatusOr<Env> LoadEnv(const Environment& e) {
  Env env;
  if (e.pools) {
    ASSIGN_OR_RETURN(env.pools, e.pools());
  }
  if (e.config) {
    ASSIGN_OR_RETURN(env.config, e.config());
  }
  if (e.reservations) {
    ASSIGN_OR_RETURN(env.reservations, e.reservations());
  }
  return env;
}

bool PoolValid(const Pool& p) {
  return p.block_size >= p.cidr.len && p.block_size <= p.cidr.addr.Bits() &&
         p.cidr.addr.Bits() - p.block_size <= 20;  // a block's ordinals must fit a JSON array
}

const Pool* PoolOf(const std::vector<Pool>& pools, const net::Prefix& block) {
  for (const Pool& p : pools) {
    if (net::Contains(p.cidr, block)) return &p;
  }
  return nullptr;
}

std::string PoolList(const std::vector<const Pool*>& pools) {
  std::vector<std::string> names;
  for (const Pool* p : pools) names.push_back(absl::StrCat("\"", p->name, "\" (", Cidr(p->cidr), ")"));
  return absl::StrCat("[", absl::StrJoin(names, ", "), "]");
}

// Address `i` (0-based) of the sequence of `block_size` blocks of `pool`.
net::Prefix NthBlock(const Pool& pool, net::Uint128 i) {
  const int host_bits = pool.cidr.addr.Bits() - pool.block_size;
  return net::Prefix{net::Add(net::Masked(pool.cidr).addr, i << host_bits), pool.block_size};
}

}  // namespace

class AllocatorImpl {
 public:
  AllocatorImpl(datastore::Datastore& store, const Environment& env, const AllocatorOptions& opts,
                AllocatorState& state)
      : store_(store), env_(env), options_(opts), state_(state) {}

  // --- node affinities -------------------------------------------------------------------

  // Lists the node's affinities, settles crashed claims/deletions, and caches the confirmed set.
  absl::StatusOr<std::set<net::Prefix>> LoadAffine(const std::string& node) {
    ASSIGN_OR_RETURN(datastore::ListResult list, store_.List(AffinityPrefix(node)));
    std::set<net::Prefix> confirmed;
    for (const Entry& e : list.entries) {
      std::optional<net::Prefix> cidr = CidrFromKey(e.key);
      if (!cidr) continue;
      absl::StatusOr<BlockAffinity> a = DecodeAffinity(e.value);
      if (!a.ok()) {
        log::Warn("affinity_invalid", {{"key", e.key}, {"error", ToStd(a.status().message())}});
        continue;
      }
      // Every affinity is settled by what its block says — pending and pendingDeletion ones are
      // leftovers of a crashed claim or release, and a confirmed one can outlive its block when a
      // release races a repair (such a phantom would count towards maxBlocksPerHost and pass
      // for the node's "other" block). One read per block, only when the cache is cold.
      const bool settled = a->state == AffinityState::kConfirmed && !a->deleted;
      std::shared_ptr<BlockSlot> slot = state_.Slot(*cidr);
      bool ours = false;
      {
        WriterRole role(*slot);
        ASSIGN_OR_RETURN(auto current, Fetch(store_, *slot));
        ours = current.first && !current.first->deleted &&
               current.first->affinity == HostAffinity(node);
      }
      if (settled && ours) {
        confirmed.insert(*cidr);
        continue;
      }
      if (ours) {
        absl::StatusOr<Revision> r =
            store_.Update(e.key, EncodeAffinity({AffinityState::kConfirmed, false}), e.mod_revision);
        if (r.ok()) {
          confirmed.insert(*cidr);
          log::Info("affinity_repaired", {{"node", node}, {"cidr", Cidr(*cidr)}});
        } else if (!absl::IsAborted(r.status()) && !absl::IsNotFound(r.status())) {
          return Annotate(r.status(), e.key);
        }
      } else {
        absl::StatusOr<Revision> r = store_.Delete(e.key, e.mod_revision);
        if (r.ok()) log::Info("affinity_cleaned", {{"node", node}, {"cidr", Cidr(*cidr)}});
        if (!r.ok() && !absl::IsAborted(r.status()) && !absl::IsNotFound(r.status())) {
          return Annotate(r.status(), e.key);
        }
      }
    }
    std::lock_guard<std::mutex> l(state_.mu);
    state_.affine[node] = confirmed;
    return confirmed;
  }

  absl::StatusOr<std::set<net::Prefix>> Affine(const std::string& node) {
    if (std::optional<std::set<net::Prefix>> cached = state_.Affine(node)) return *cached;
    return LoadAffine(node);
  }

  // Claims `cidr` for `node`. true: the block now exists affine to the node (created by us, or
  // it already was); false: someone else holds that CIDR.
  absl::StatusOr<bool> Claim(const std::string& node, const net::Prefix& cidr) {
    const std::string aff_key = AffinityKey(node, cidr);
    const std::string pending = EncodeAffinity({AffinityState::kPending, false});
    absl::StatusOr<Revision> aff_rev = store_.Create(aff_key, pending);
    if (absl::IsAlreadyExists(aff_rev.status())) {
      // Our own node's key: left by a crashed claim, or the cache is stale. Take it over.
      absl::StatusOr<Entry> e = store_.Get(aff_key);
      if (absl::IsNotFound(e.status())) return false;
      if (!e.ok()) return Annotate(e.status(), aff_key);
      aff_rev = store_.Update(aff_key, pending, e->mod_revision);
      if (absl::IsAborted(aff_rev.status()) || absl::IsNotFound(aff_rev.status())) return false;
    }
    if (!aff_rev.ok()) return Annotate(aff_rev.status(), absl::StrCat("claiming ", Cidr(cidr)));

    std::shared_ptr<BlockSlot> slot = state_.Slot(cidr);
    Block fresh = Block::Empty(cidr, HostAffinity(node));
    absl::StatusOr<Revision> block_rev;
    {
      WriterRole role(*slot);
      block_rev = store_.Create(slot->key, EncodeBlock(fresh));
      std::lock_guard<std::mutex> l(slot->mu);
      if (block_rev.ok()) {
        slot->known = true;
        slot->block = fresh;
        slot->revision = *block_rev;
      } else {
        slot->known = false;
      }
    }
    if (!block_rev.ok()) {
      // Lost the race (or failed): our pending affinity must not outlive the attempt.
      absl::StatusOr<Revision> d = store_.Delete(aff_key, *aff_rev);
      if (!d.ok() && !absl::IsNotFound(d.status())) {
        log::Warn("affinity_cleanup_failed", {{"key", aff_key},
                                              {"error", ToStd(d.status().message())}});
      }
      if (absl::IsAlreadyExists(block_rev.status())) return false;
      return Annotate(block_rev.status(), absl::StrCat("creating block ", Cidr(cidr)));
    }
    const std::string confirmed = EncodeAffinity({AffinityState::kConfirmed, false});
    absl::StatusOr<Revision> c = store_.Update(aff_key, confirmed, *aff_rev);
    // Settled away by a concurrent LoadAffine, rewritten, or a reply lost (Unavailable: maybe
    // applied): state our claim again until it sticks. Bounded: each round is a state change
    // by someone else or a datastore failure.
    for (int round = 0; !c.ok() && round < 5; ++round) {
      const absl::Status& e = c.status();
      if (!absl::IsNotFound(e) && !absl::IsAborted(e) && !absl::IsAlreadyExists(e) &&
          !absl::IsUnavailable(e)) {
        break;
      }
      c = store_.Create(aff_key, confirmed);
      if (absl::IsAlreadyExists(c.status())) {
        c = store_.Update(aff_key, confirmed, datastore::kAnyRevision);
      }
    }
    if (!c.ok()) {
      // The block is ours (its affinity field says so); the pending key is repaired by the next
      // LoadAffine. Surface the error: the datastore is failing.
      return Annotate(c.status(), absl::StrCat("confirming affinity of ", Cidr(cidr)));
    }
    state_.AddAffine(node, cidr);
    log::Info("block_claimed", {{"node", node}, {"cidr", Cidr(cidr)}});
    return true;
  }

  // --- block operations -----------------------------------------------------------------

  struct Taken {
    std::vector<int> ordinals;
    uint64_t sequence_number = 0;
  };

  // Takes up to `n` addresses from the block. `affine_node`: only while the block is still
  // affine to it (the fast path must not silently borrow).
  absl::StatusOr<Taken> TakeFrom(const net::Prefix& cidr, int n, const AllocationAttributes& attrs,
                                 const std::vector<net::Prefix>& reserved,
                                 const std::string* affine_node) {
    Taken taken;
    BlockOp op;
    op.apply = [&](Block& b) -> absl::Status {
      taken = Taken{};
      if (affine_node != nullptr && b.affinity != HostAffinity(*affine_node)) {
        return absl::FailedPreconditionError("no longer affine");
      }
      taken.ordinals = b.AutoAssign(n, attrs, reserved);
      if (taken.ordinals.empty()) return absl::ResourceExhaustedError("block full");
      taken.sequence_number = b.sequence_number;
      return absl::OkStatus();
    };
    std::shared_ptr<BlockSlot> slot = state_.Slot(cidr);
    RETURN_IF_ERROR(RunOp(store_, state_, *slot, op, options_.max_cas_attempts));
    return taken;
  }

  struct Freed {
    net::IpAddress ip;
    std::string handle_id;
  };

  // Frees the ordinals `select` picks (re-run on every attempt) and, if that leaves the block
  // empty, releases the block when the rules allow. The handle records of the freed addresses
  // are decremented (or deleted) in the same Commit; `handles_after` (optional) receives them
  // as they now stand.
  absl::StatusOr<std::vector<Freed>> ReleaseIn(
      const net::Prefix& cidr, std::function<absl::StatusOr<std::vector<int>>(const Block&)> select,
      std::map<std::string, HandleState>* handles_after = nullptr) {
    std::vector<Freed> freed;
    BlockOp op;
    op.want_after = true;
    op.apply = [&](Block& b) -> absl::Status {
      freed.clear();
      ASSIGN_OR_RETURN(std::vector<int> ordinals, select(b));
      for (int o : ordinals) {
        const AllocationAttributes* a = b.AttributesOf(o);
        if (a == nullptr) continue;
        freed.push_back({b.AddressOf(o), a->handle_id});
        b.Release(o);
      }
      return absl::OkStatus();
    };
    std::shared_ptr<BlockSlot> slot = state_.Slot(cidr);
    absl::Status s = RunOp(store_, state_, *slot, op, options_.max_cas_attempts);
    if (absl::IsNotFound(s)) return std::vector<Freed>{};  // no block, nothing to free
    RETURN_IF_ERROR(s);
    if (handles_after != nullptr) {
      for (auto& [id, h] : op.handles_after) (*handles_after)[id] = std::move(h);
    }
    if (!freed.empty() && op.after && op.after->Empty()) {
      absl::Status gc = MaybeReleaseEmptyBlock(*slot, *op.after);
      if (!gc.ok()) {
        // The addresses are free; a block that stays is only a missed optimisation.
        log::Warn("empty_block_release_failed",
                  {{"cidr", Cidr(cidr)}, {"error", ToStd(gc.message())}});
      }
    }
    return freed;
  }

  // A block left empty returns to the pool unless it is its node's only affine block in that
  // pool (the node would just claim it again for its next pod).
  absl::Status MaybeReleaseEmptyBlock(BlockSlot& slot, const Block& seen) {
    const std::string node = seen.AffineNode();
    if (!node.empty()) {
      ASSIGN_OR_RETURN(Env env, LoadEnv(env_));
      const Pool* pool = PoolOf(env.pools, seen.cidr);
      if (pool != nullptr) {
        ASSIGN_OR_RETURN(std::set<net::Prefix> affine, Affine(node));
        auto others = [&](const std::set<net::Prefix>& set) {
          int n = 0;
          for (const net::Prefix& p : set) {
            if (p != seen.cidr && net::Contains(pool->cidr, p)) ++n;
          }
          return n;
        };
        if (others(affine) == 0) return absl::OkStatus();
        // The cache says there are others: make sure before giving this one up.
        ASSIGN_OR_RETURN(affine, LoadAffine(node));
        if (others(affine) == 0) return absl::OkStatus();
      }
      // else: its pool is gone, so the block goes whatever the node holds.
    }
    return ReleaseBlockIfEmpty(slot, node);
  }

  // Deletes the block if it is still empty and affine to `node` (or unaffine when node is
  // empty), CAS-guarded, with the affinity walked through pendingDeletion.
  absl::Status ReleaseBlockIfEmpty(BlockSlot& slot, const std::string& node) {
    const std::string aff_key = node.empty() ? "" : AffinityKey(node, slot.cidr);
    std::optional<Revision> aff_rev;
    if (!node.empty()) {
      absl::StatusOr<Entry> e = store_.Get(aff_key);
      if (e.ok()) {
        absl::StatusOr<Revision> r = store_.Update(
            aff_key, EncodeAffinity({AffinityState::kPendingDeletion, false}), e->mod_revision);
        if (absl::IsAborted(r.status())) return absl::OkStatus();  // someone is busy with it: leave it
        if (!r.ok() && !absl::IsNotFound(r.status())) return Annotate(r.status(), aff_key);
        if (r.ok()) aff_rev = *r;
      } else if (!absl::IsNotFound(e.status())) {
        return Annotate(e.status(), aff_key);
      }
    }
    absl::Status deleted = absl::OkStatus();
    bool gone = false;
    {
      WriterRole role(slot);
      ASSIGN_OR_RETURN(auto current, Current(store_, slot));
      const std::optional<Block>& block = current.first;
      const Revision rev = current.second;
      const bool still = block && block->Empty() &&
                         (node.empty() ? !block->affinity.has_value()
                                       : block->affinity == HostAffinity(node));
      if (still) {
        absl::StatusOr<Revision> d = store_.Delete(slot.key, rev);
        Forget(slot);
        if (d.ok() || absl::IsNotFound(d.status())) {
          gone = true;
        } else if (!absl::IsAborted(d.status())) {
          deleted = Annotate(d.status(), absl::StrCat("deleting block ", Cidr(slot.cidr)));
        }
      }
    }
    if (node.empty()) return deleted;
    if (gone) {
      state_.RemoveAffine(node, slot.cidr);
      absl::StatusOr<Revision> d =
          store_.Delete(aff_key, aff_rev ? *aff_rev : datastore::kAnyRevision);
      if (!d.ok() && !absl::IsNotFound(d.status()) && !absl::IsAborted(d.status())) {
        return Annotate(d.status(), aff_key);  // LoadAffine settles the pendingDeletion key
      }
      log::Info("block_released", {{"node", node}, {"cidr", Cidr(slot.cidr)}});
      return absl::OkStatus();
    }
    // A concurrent allocation won (or the delete failed): the node keeps the block.
    if (aff_rev) {
      absl::StatusOr<Revision> r = store_.Update(
          aff_key, EncodeAffinity({AffinityState::kConfirmed, false}), *aff_rev);
      if (!r.ok() && !absl::IsAborted(r.status()) && !absl::IsNotFound(r.status())) {
        return Annotate(r.status(), aff_key);
      }
    }
    return deleted;
  }

  // --- pools ----------------------------------------------------------------------------

  absl::StatusOr<bool> Selects(const Pool& pool, const std::string& node,
                               std::optional<std::map<std::string, std::string>>& labels) {
    std::shared_ptr<const resources::selector::Selector> sel;
    {
      std::lock_guard<std::mutex> l(state_.mu);
      auto it = state_.selectors.find(pool.node_selector);
      if (it != state_.selectors.end()) sel = it->second;
    }
    if (!sel) {
      absl::StatusOr<resources::selector::Selector> parsed =
          resources::selector::Selector::Parse(pool.node_selector);
      if (!parsed.ok()) {
        return absl::InvalidArgumentError(absl::StrCat("IPPool \"", pool.name, "\": nodeSelector: ",
                                                       ToStd(parsed.status().message())));
      }
      sel = std::make_shared<const resources::selector::Selector>(*parsed);
      std::lock_guard<std::mutex> l(state_.mu);
      state_.selectors.emplace(pool.node_selector, sel);
    }
    if (!labels) {
      if (env_.node_labels) {
        ASSIGN_OR_RETURN(labels, env_.node_labels(node));
      } else {
        labels.emplace();
      }
    }
    return sel->Matches(*labels);
  }

  absl::StatusOr<std::vector<const Pool*>> CandidatePools(
      const Env& env, int family, const std::vector<std::string>& requested,
      const std::string& node, Use use) {
    std::optional<std::map<std::string, std::string>> labels;
    const char* use_name = use == Use::kWorkload ? "Workload" : "Tunnel";
    auto allows = [&](const Pool& p) { return use == Use::kWorkload ? p.allow_workload : p.allow_tunnel; };
    std::vector<const Pool*> out;
    if (!requested.empty()) {
      for (const std::string& name : requested) {
        const Pool* found = nullptr;
        std::optional<net::Prefix> as_cidr = net::ParsePrefix(name);
        for (const Pool& p : env.pools) {
          if (p.name == name || (as_cidr && net::Masked(*as_cidr) == net::Masked(p.cidr))) {
            found = &p;
            break;
          }
        }
        if (found == nullptr) {
          return absl::InvalidArgumentError(absl::StrCat("IP pool \"", name, "\" not found"));
        }
        const std::string what = absl::StrCat("IP pool \"", found->name, "\" (", Cidr(found->cidr), ")");
        if (found->cidr.addr.family != family) {
          return absl::InvalidArgumentError(absl::StrCat(what, " requested for IPv", family,
                                                         " but is IPv", found->cidr.addr.family));
        }
        if (found->disabled) return absl::InvalidArgumentError(absl::StrCat(what, " is disabled"));
        if (!allows(*found)) {
          return absl::InvalidArgumentError(absl::StrCat(what, " does not allow use ", use_name));
        }
        if (!PoolValid(*found)) {
          return absl::InvalidArgumentError(absl::StrCat(what, ": blockSize ", found->block_size,
                                                         " unusable"));
        }
        ASSIGN_OR_RETURN(bool match, Selects(*found, node, labels));
        if (!match) {
          return absl::InvalidArgumentError(absl::StrCat(what, ": nodeSelector \"",
                                                         found->node_selector,
                                                         "\" does not select node \"", node, "\""));
        }
        if (std::find(out.begin(), out.end(), found) == out.end()) out.push_back(found);
      }
      return out;
    }
    for (const Pool& p : env.pools) {
      if (p.cidr.addr.family != family || p.disabled || p.manual_assignment || !allows(p) ||
          !PoolValid(p)) {
        continue;
      }
      ASSIGN_OR_RETURN(bool match, Selects(p, node, labels));
      if (match) out.push_back(&p);
    }
    std::sort(out.begin(), out.end(), [](const Pool* a, const Pool* b) { return a->name < b->name; });
    return out;
  }

  // --- assignment -----------------------------------------------------------------------

  struct FamilyResult {
    std::vector<Assigned> assigned;
  };

  // Everything AssignFamily took, for rollback.
  void Rollback(const std::string& handle_id, const std::vector<Assigned>& assigned) {
    std::map<net::Prefix, std::map<int, uint64_t>> by_block;
    for (const Assigned& a : assigned) {
      by_block[a.block][static_cast<int>(net::ToInteger(a.ip) - net::ToInteger(a.block.addr))] =
          a.sequence_number;
    }
    for (const auto& [cidr, ordinals] : by_block) {
      absl::StatusOr<std::vector<Freed>> r =
          ReleaseIn(cidr, [&](const Block& b) -> absl::StatusOr<std::vector<int>> {
            std::vector<int> out;
            for (const auto& [o, seq] : ordinals) {
              const AllocationAttributes* a = b.AttributesOf(o);
              if (a != nullptr && a->handle_id == handle_id && b.SequenceNumberOf(o) == seq) {
                out.push_back(o);
              }
            }
            return out;
          });
      if (!r.ok()) {
        // Left allocated under the handle in the block only: ReleaseByHandle's scan and
        // `ipam check` find it.
        log::Warn("rollback_failed", {{"handle", handle_id}, {"cidr", Cidr(cidr)},
                                      {"error", ToStd(r.status().message())}});
      }
    }
  }

  absl::StatusOr<std::vector<Assigned>> AssignFamily(const Env& env, const AutoAssignRequest& req,
                                                     int family, int n,
                                                     const std::vector<std::string>& requested) {
    std::vector<Assigned> out;
    if (n <= 0) return out;
    ASSIGN_OR_RETURN(std::vector<const Pool*> pools,
                     CandidatePools(env, family, requested, req.node, req.use));
    if (pools.empty()) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "no IPv", family, " IP pool is enabled for node \"", req.node, "\" and use ",
          req.use == Use::kWorkload ? "Workload" : "Tunnel"));
    }
    AllocationAttributes attrs{req.handle_id, req.attributes};
    if (!attrs.secondary.count("node")) attrs.secondary["node"] = req.node;
    auto in_pools = [&](const net::Prefix& cidr) {
      return std::any_of(pools.begin(), pools.end(),
                         [&](const Pool* p) { return net::Contains(p->cidr, cidr); });
    };
    auto record = [&](const net::Prefix& cidr, const Taken& t, const std::string& how) {
      Block probe;
      probe.cidr = cidr;
      for (int o : t.ordinals) {
        out.push_back({probe.AddressOf(o), cidr, how, t.sequence_number});
      }
    };
    auto fail = [&](absl::Status s) -> absl::Status {
      Rollback(req.handle_id, out);
      return s;
    };
    const std::string affinity = HostAffinity(req.node);

    // (1) The node's affine blocks with room; on the second pass with a freshly listed set.
    std::set<net::Prefix> affine;
    for (int pass = 0; pass < 2 && static_cast<int>(out.size()) < n; ++pass) {
      absl::StatusOr<std::set<net::Prefix>> a = pass == 0 ? Affine(req.node) : LoadAffine(req.node);
      if (!a.ok()) return fail(a.status());
      affine = std::move(*a);
      for (const net::Prefix& cidr : affine) {
        if (static_cast<int>(out.size()) >= n) break;
        if (cidr.addr.family != family || !in_pools(cidr)) continue;
        if (pass == 1) Forget(*state_.Slot(cidr));  // re-read: another process may have freed
        absl::StatusOr<Taken> t = TakeFrom(cidr, n - static_cast<int>(out.size()), attrs,
                                           env.reservations, &req.node);
        if (t.ok()) {
          record(cidr, *t, absl::StrCat("affine block ", Cidr(cidr), " of ", req.node));
          continue;
        }
        if (absl::IsNotFound(t.status()) || t.status().code() == absl::StatusCode::kFailedPrecondition) {
          state_.RemoveAffine(req.node, cidr);  // gone or no longer ours
          continue;
        }
        if (t.status().code() == absl::StatusCode::kResourceExhausted) continue;
        return fail(t.status());
      }
    }

    // (2) Claim new blocks.
    std::vector<std::string> why;
    if (static_cast<int>(out.size()) < n) {
      if (!env.config.auto_allocate_blocks) {
        why.push_back("autoAllocateBlocks is false");
      } else {
        absl::Status s = ClaimAndTake(env, req, family, n, pools, attrs, affine, out, why);
        if (!s.ok()) return fail(s);
      }
    }

    // (3) Borrow from any block of the candidate pools.
    if (static_cast<int>(out.size()) < n) {
      if (env.config.strict_affinity) {
        why.push_back("strictAffinity forbids borrowing");
      } else {
        absl::StatusOr<datastore::ListResult> list = store_.List(BlockPrefix(family));
        if (!list.ok()) return fail(Annotate(list.status(), "listing blocks"));
        for (const Entry& e : list->entries) {
          if (static_cast<int>(out.size()) >= n) break;
          absl::StatusOr<Block> b = DecodeBlock(e.value);
          if (!b.ok() || b->deleted || !in_pools(b->cidr)) continue;
          if (b->NumFreeUsable(env.reservations) == 0) continue;
          std::shared_ptr<BlockSlot> slot = state_.Slot(b->cidr);
          {
            std::lock_guard<std::mutex> l(slot->mu);
            if (!slot->writing && (!slot->known || slot->revision < e.mod_revision)) {
              slot->known = true;
              slot->block = *b;
              slot->revision = e.mod_revision;
            }
          }
          absl::StatusOr<Taken> t = TakeFrom(b->cidr, n - static_cast<int>(out.size()), attrs,
                                             env.reservations, nullptr);
          if (t.ok()) {
            const std::string owner = b->AffineNode();
            record(b->cidr, *t,
                   b->affinity == affinity
                       ? absl::StrCat("affine block ", Cidr(b->cidr), " of ", req.node,
                                      " (affinity not listed)")
                       : absl::StrCat("borrowed from block ", Cidr(b->cidr),
                                      owner.empty() ? std::string(" (no affinity)")
                                                    : absl::StrCat(" (affine to ", owner, ")")));
            continue;
          }
          if (absl::IsNotFound(t.status()) ||
              t.status().code() == absl::StatusCode::kResourceExhausted) {
            continue;
          }
          return fail(t.status());
        }
        if (static_cast<int>(out.size()) < n) why.push_back("no block of these pools has room to borrow");
      }
    }
    if (static_cast<int>(out.size()) < n) {
      return fail(absl::ResourceExhaustedError(absl::StrCat(
          "cannot assign ", n, " IPv", family, " address", n == 1 ? "" : "es", " for node \"",
          req.node, "\" from IP pools ", PoolList(pools), " (got ", out.size(), "): ",
          absl::StrJoin(why, "; "))));
    }
    return out;
  }

  absl::Status ClaimAndTake(const Env& env, const AutoAssignRequest& req, int family, int n,
                            const std::vector<const Pool*>& pools, const AllocationAttributes& attrs,
                            std::set<net::Prefix>& affine, std::vector<Assigned>& out,
                            std::vector<std::string>& why) {
    auto count_family = [&] {
      int c = 0;
      for (const net::Prefix& p : affine) c += p.addr.family == family;
      return c;
    };
    const int max = env.config.max_blocks_per_host;
    if (max > 0 && count_family() >= max) {
      why.push_back(absl::StrCat("node holds maxBlocksPerHost (", max, ") IPv", family, " blocks"));
      return absl::OkStatus();
    }
    // Existing blocks, to skip them without enumerating a (possibly 2^70-block) pool.
    ASSIGN_OR_RETURN(datastore::ListResult list, store_.List(BlockPrefix(family)));
    std::set<net::Prefix> existing;
    for (const Entry& e : list.entries) {
      if (std::optional<net::Prefix> c = CidrFromKey(e.key)) existing.insert(*c);
    }
    auto taken_or_reserved = [&](const Pool& pool, const net::Prefix& cidr) {
      if (existing.count(cidr)) return true;
      for (const net::Prefix& e : existing) {  // blocks of another size (the pool was edited)
        if (e.len != pool.block_size && net::Overlaps(e, cidr)) return true;
      }
      for (const net::Prefix& r : env.reservations) {
        if (net::Contains(r, cidr)) return true;  // nothing in it could ever be handed out
      }
      return false;
    };
    bool any_free = false;
    for (const Pool* pool : pools) {
      const net::Uint128 count = net::Uint128(1) << (pool->block_size - pool->cidr.len);
      size_t in_pool = 0;
      for (const net::Prefix& e : existing) in_pool += net::Contains(pool->cidr, e);
      // Visiting existing+64 candidates finds a free one if the pool has any: every skip is an
      // existing (or reserved) block, and losing a claim race adds that block to the skips.
      const net::Uint128 budget =
          std::min<net::Uint128>(count, static_cast<net::Uint128>(in_pool + 64 + env.reservations.size() * 64));
      net::Uint128 start = static_cast<net::Uint128>(state_.Random());
      if (pool->cidr.addr.family == 6) start = (start << 64) | state_.Random();
      start %= count;
      for (net::Uint128 i = 0; i < budget && static_cast<int>(out.size()) < n; ++i) {
        const net::Prefix cidr = NthBlock(*pool, (start + i) % count);
        if (taken_or_reserved(*pool, cidr)) continue;
        any_free = true;
        if (max > 0 && count_family() >= max) {
          why.push_back(absl::StrCat("node holds maxBlocksPerHost (", max, ") IPv", family, " blocks"));
          return absl::OkStatus();
        }
        ASSIGN_OR_RETURN(bool won, Claim(req.node, cidr));
        existing.insert(cidr);
        if (!won) continue;
        affine.insert(cidr);
        absl::StatusOr<Taken> t = TakeFrom(cidr, n - static_cast<int>(out.size()), attrs,
                                           env.reservations, &req.node);
        if (t.ok()) {
          Block probe;
          probe.cidr = cidr;
          for (int o : t->ordinals) {
            out.push_back({probe.AddressOf(o), cidr,
                           absl::StrCat("claimed block ", Cidr(cidr), " for ", req.node),
                           t->sequence_number});
          }
        } else if (!absl::IsNotFound(t.status()) &&
                   t.status().code() != absl::StatusCode::kResourceExhausted &&
                   t.status().code() != absl::StatusCode::kFailedPrecondition) {
          return t.status();
        }
      }
    }
    if (!any_free && static_cast<int>(out.size()) < n) why.push_back("no free blocks left in the pools");
    return absl::OkStatus();
  }

  absl::StatusOr<AutoAssignResult> AutoAssign(const AutoAssignRequest& req) {
    if (req.handle_id.empty()) return absl::InvalidArgumentError("AutoAssign: empty handle ID");
    if (req.node.empty()) return absl::InvalidArgumentError("AutoAssign: empty node name");
    if (req.num_v4 < 0 || req.num_v6 < 0) {
      return absl::InvalidArgumentError("AutoAssign: negative address count");
    }
    ASSIGN_OR_RETURN(Env env, LoadEnv(env_));
    AutoAssignResult result;
    ASSIGN_OR_RETURN(result.v4, AssignFamily(env, req, 4, req.num_v4, req.v4_pools));
    absl::StatusOr<std::vector<Assigned>> v6 = AssignFamily(env, req, 6, req.num_v6, req.v6_pools);
    if (!v6.ok()) {
      Rollback(req.handle_id, result.v4);  // both families or neither
      return v6.status();
    }
    result.v6 = std::move(*v6);
    // The handle record was written with each block (one Commit per block): nothing left to do.
    for (const auto* list : {&result.v4, &result.v6}) {
      for (const Assigned& a : *list) {
        log::Debug("ip_assigned", {{"ip", Ip(a.ip)}, {"handle", req.handle_id}, {"how", a.how}});
      }
    }
    return result;
  }

  absl::StatusOr<Assigned> AssignIP(const net::IpAddress& ip, const std::string& handle_id,
                                    const std::map<std::string, std::string>& attributes,
                                    const std::string& node) {
    if (handle_id.empty()) return absl::InvalidArgumentError("AssignIP: empty handle ID");
    ASSIGN_OR_RETURN(Env env, LoadEnv(env_));
    const Pool* pool = nullptr;
    for (const Pool& p : env.pools) {
      if (!p.disabled && PoolValid(p) && net::Contains(p.cidr, ip)) pool = &p;
    }
    if (pool == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat(Ip(ip), " is not in any enabled IP pool"));
    }
    net::Prefix cidr = net::Masked(net::Prefix{ip, pool->block_size});
    bool searched = false;  // looked for an existing block of another size holding `ip`
    AllocationAttributes attrs{handle_id, attributes};
    if (!node.empty() && !attrs.secondary.count("node")) attrs.secondary["node"] = node;
    Assigned assigned{ip, cidr, "", 0};
    bool claimed = false;
    for (int attempt = 0; attempt < options_.max_cas_attempts; ++attempt) {
      BlockOp op;
      std::string owner;
      op.apply = [&](Block& b) -> absl::Status {
        std::optional<int> o = b.OrdinalOf(ip);
        if (!o) return absl::InternalError("address outside its block");
        RETURN_IF_ERROR(b.Assign(*o, attrs));
        assigned.sequence_number = b.sequence_number;
        owner = b.AffineNode();
        return absl::OkStatus();
      };
      absl::Status s = RunOp(store_, state_, *state_.Slot(cidr), op, options_.max_cas_attempts);
      if (s.ok()) {
        assigned.how = claimed ? absl::StrCat("claimed block ", Cidr(cidr), " for ", node)
                       : owner.empty()
                           ? absl::StrCat("requested address in block ", Cidr(cidr), " (no affinity)")
                           : absl::StrCat("requested address in block ", Cidr(cidr),
                                          " (affine to ", owner, ")");
        break;
      }
      if (!absl::IsNotFound(s)) return s;
      if (!searched) {
        // The pool's blockSize may have changed since the blocks were made (the pool was
        // deleted and recreated): the address's block is then one of another size, and a new
        // block here would overlap it and hand its addresses out a second time.
        searched = true;
        ASSIGN_OR_RETURN(datastore::ListResult list, store_.List(BlockPrefix(cidr.addr.family)));
        std::optional<net::Prefix> holder;
        std::optional<net::Prefix> overlapping;
        for (const Entry& e : list.entries) {
          std::optional<net::Prefix> c = CidrFromKey(e.key);
          if (!c || *c == cidr || !net::Overlaps(*c, cidr)) continue;
          (net::Contains(*c, ip) ? holder : overlapping) = *c;
        }
        if (holder) {
          cidr = *holder;
          assigned.block = cidr;
          --attempt;  // not a conflict: the search happens once
          continue;
        }
        if (overlapping) {
          return absl::FailedPreconditionError(absl::StrCat(
              "cannot assign ", Ip(ip), ": its block ", Cidr(cidr), " would overlap existing block ",
              Cidr(*overlapping), " (the pool's blockSize changed)"));
        }
      }
      if (node.empty()) {
        // Nobody to make it affine to: an unaffine block (borrowable by everyone).
        Block fresh = Block::Empty(cidr, std::nullopt);
        absl::StatusOr<Revision> c = store_.Create(BlockKey(cidr), EncodeBlock(fresh));
        if (!c.ok() && !absl::IsAlreadyExists(c.status())) return c.status();
      } else {
        ASSIGN_OR_RETURN(claimed, Claim(node, cidr));
      }
      Forget(*state_.Slot(cidr));
      if (attempt + 1 == options_.max_cas_attempts) {
        return absl::AbortedError(absl::StrCat("block ", Cidr(cidr), ": kept changing; try again"));
      }
    }
    log::Debug("ip_assigned", {{"ip", Ip(ip)}, {"handle", handle_id}, {"how", assigned.how}});
    return assigned;
  }

  // --- release --------------------------------------------------------------------------

  absl::StatusOr<std::vector<Block>> AllBlocks() {
    std::vector<Block> out;
    for (int family : {4, 6}) {
      ASSIGN_OR_RETURN(datastore::ListResult list, store_.List(BlockPrefix(family)));
      for (const Entry& e : list.entries) {
        absl::StatusOr<Block> b = DecodeBlock(e.value);
        if (!b.ok()) {
          log::Warn("block_invalid", {{"key", e.key}, {"error", ToStd(b.status().message())}});
          continue;
        }
        out.push_back(std::move(*b));
      }
    }
    std::sort(out.begin(), out.end(), [](const Block& a, const Block& b) { return a.cidr < b.cidr; });
    return out;
  }

  // Each block is released in one Commit that also decrements the record, so normally the
  // record is gone once its blocks are done. The scan below is for data an older version left
  // in its crash window (block written, handle record not: Commit has closed that window) and
  // for records edited by hand; it stays so such addresses are never lost.
  absl::StatusOr<std::vector<net::IpAddress>> ReleaseByHandle(const std::string& handle_id) {
    if (handle_id.empty()) return absl::InvalidArgumentError("ReleaseByHandle: empty handle ID");
    const std::string key = HandleKey(handle_id);
    std::vector<net::IpAddress> released;
    auto of_handle = [&](const Block& b) -> absl::StatusOr<std::vector<int>> {
      return b.OrdinalsOfHandle(handle_id);
    };
    for (int attempt = 0; attempt < options_.max_cas_attempts; ++attempt) {
      // The record: as this process last wrote it (first round only; saves a read), or read.
      std::optional<HandleState> rec = attempt == 0 ? state_.CachedHandle(handle_id) : std::nullopt;
      if (!rec) {
        ASSIGN_OR_RETURN(rec, ResolveHandle(store_, state_, handle_id, /*use_cache=*/false,
                                            /*guess_absent=*/false));
      }
      bool scan = !rec->exists;  // no record: an old crash window, or nothing to do
      std::set<net::Prefix> visited;
      std::map<std::string, HandleState> after;  // the record after our own Commits
      for (const auto& [text, count] : rec->record.blocks) {
        std::optional<net::Prefix> cidr = net::ParsePrefix(text);
        if (!cidr) {
          scan = true;
          continue;
        }
        visited.insert(*cidr);
        ASSIGN_OR_RETURN(std::vector<Freed> f, ReleaseIn(*cidr, of_handle, &after));
        for (const Freed& x : f) released.push_back(x.ip);
        if (static_cast<int>(f.size()) != count) scan = true;  // record and blocks disagree
      }
      // Free check against what this process knows: a cached block holding the handle that
      // the record does not name (old crash-window data) forces the scan.
      if (!scan) {
        std::lock_guard<std::mutex> l(state_.mu);
        for (const auto& [cidr, slot] : state_.slots) {
          if (visited.count(cidr)) continue;
          std::lock_guard<std::mutex> sl(slot->mu);
          if (slot->known && slot->block && !slot->block->OrdinalsOfHandle(handle_id).empty()) {
            scan = true;
            break;
          }
        }
      }
      if (scan) {
        ASSIGN_OR_RETURN(std::vector<Block> blocks, AllBlocks());
        for (const Block& b : blocks) {
          if (visited.count(b.cidr) || b.OrdinalsOfHandle(handle_id).empty()) continue;
          visited.insert(b.cidr);
          ASSIGN_OR_RETURN(std::vector<Freed> f, ReleaseIn(b.cidr, of_handle, &after));
          for (const Freed& x : f) released.push_back(x.ip);
        }
      }
      // Where the record stands now: as our last Commit left it, else as read.
      auto it = after.find(handle_id);
      HandleState now = it != after.end() ? it->second : *rec;
      if (!now.exists) break;
      if (now.revision == 0) {
        ASSIGN_OR_RETURN(now, ResolveHandle(store_, state_, handle_id, false, false));
        if (!now.exists) break;
      }
      // Left over: blocks we visited (the record over-counted, or its block is gone) are dropped
      // with the record; a block we did not visit was assigned meanwhile: go round again.
      bool all_visited = true;
      for (const auto& [text, count] : now.record.blocks) {
        std::optional<net::Prefix> cidr = net::ParsePrefix(text);
        if (cidr && !visited.count(*cidr)) all_visited = false;
      }
      if (all_visited) {
        state_.ForgetHandle(handle_id);
        absl::StatusOr<Revision> d = store_.Delete(key, now.revision);
        if (d.ok() || absl::IsNotFound(d.status())) break;
        if (!absl::IsAborted(d.status())) {
          return Annotate(d.status(), absl::StrCat("deleting handle ", handle_id));
        }
      }
      // The record changed under us (another assignment to this handle): go round again.
      if (attempt + 1 == options_.max_cas_attempts) {
        return absl::AbortedError(absl::StrCat("handle ", handle_id, " kept changing; try again"));
      }
    }
    std::sort(released.begin(), released.end());
    released.erase(std::unique(released.begin(), released.end()), released.end());
    if (!released.empty()) {
      log::Debug("handle_released", {{"handle", handle_id}, {"count", std::to_string(released.size())}});
    }
    return released;
  }

  absl::StatusOr<std::vector<net::IpAddress>> ReleaseIPs(const std::vector<ReleaseRequest>& reqs) {
    ASSIGN_OR_RETURN(Env env, LoadEnv(env_));
    // Group by block. The block of an address is found from its pool's block size, or — for a
    // pool since deleted — from the blocks that exist.
    std::map<net::Prefix, std::vector<const ReleaseRequest*>> by_block;
    std::optional<std::vector<Block>> all;
    for (const ReleaseRequest& r : reqs) {
      std::optional<net::Prefix> cidr;
      for (const Pool& p : env.pools) {
        if (PoolValid(p) && net::Contains(p.cidr, r.ip)) {
          cidr = net::Masked(net::Prefix{r.ip, p.block_size});
        }
      }
      if (!cidr) {
        if (!all) {
          ASSIGN_OR_RETURN(all, AllBlocks());
        }
        for (const Block& b : *all) {
          if (net::Contains(b.cidr, r.ip)) cidr = b.cidr;
        }
      }
      if (!cidr) continue;  // in no block: already free
      by_block[*cidr].push_back(&r);
    }
    // Validate every precondition before changing anything, so a stale request fails the call
    // as a whole (each block write re-checks them under its CAS).
    auto select_for = [&](const std::vector<const ReleaseRequest*>& rs) {
      return [&rs](const Block& b) -> absl::StatusOr<std::vector<int>> {
        std::vector<int> out;
        for (const ReleaseRequest* r : rs) {
          std::optional<int> o = b.OrdinalOf(r->ip);
          if (!o) continue;
          const AllocationAttributes* a = b.AttributesOf(*o);
          if (a == nullptr) continue;  // already free: idempotent
          if (r->handle_id && a->handle_id != *r->handle_id) {
            return absl::FailedPreconditionError(absl::StrCat(
                Ip(r->ip), " is held by handle \"", a->handle_id, "\", not \"", *r->handle_id, "\""));
          }
          if (r->sequence_number && b.SequenceNumberOf(*o) != *r->sequence_number) {
            return absl::FailedPreconditionError(absl::StrCat(
                Ip(r->ip), " was reallocated (sequence number ", b.SequenceNumberOf(*o),
                ", request quotes ", *r->sequence_number, ")"));
          }
          out.push_back(*o);
        }
        return out;
      };
    };
    // A block the pool's blockSize names but that does not exist: the pool may have been
    // recreated with another blockSize, so the address lives in an existing block of another size.
    std::vector<const ReleaseRequest*> elsewhere;
    for (auto it = by_block.begin(); it != by_block.end();) {
      absl::StatusOr<Entry> e = store_.Get(BlockKey(it->first));
      if (absl::IsNotFound(e.status())) {
        elsewhere.insert(elsewhere.end(), it->second.begin(), it->second.end());
        it = by_block.erase(it);
        continue;
      }
      if (!e.ok()) return Annotate(e.status(), absl::StrCat("reading block ", Cidr(it->first)));
      ASSIGN_OR_RETURN(Block b, DecodeBlock(e->value));
      RETURN_IF_ERROR(select_for(it->second)(b).status());
      ++it;
    }
    if (!elsewhere.empty()) {
      if (!all) {
        ASSIGN_OR_RETURN(all, AllBlocks());
      }
      std::map<net::Prefix, std::vector<const ReleaseRequest*>> found;
      for (const ReleaseRequest* r : elsewhere) {
        for (const Block& b : *all) {
          if (net::Contains(b.cidr, r->ip)) found[b.cidr].push_back(r);
        }
      }
      for (const auto& [cidr, rs] : found) {
        for (const Block& b : *all) {
          if (b.cidr == cidr) RETURN_IF_ERROR(select_for(rs)(b).status());
        }
        std::vector<const ReleaseRequest*>& into = by_block[cidr];
        into.insert(into.end(), rs.begin(), rs.end());
      }
    }
    // Each block's Commit decrements (or deletes) the handle records of what it freed.
    std::vector<net::IpAddress> released;
    for (const auto& [cidr, rs] : by_block) {
      ASSIGN_OR_RETURN(std::vector<Freed> f, ReleaseIn(cidr, select_for(rs)));
      for (const Freed& x : f) released.push_back(x.ip);
    }
    return released;
  }

  absl::StatusOr<std::vector<net::IpAddress>> GetHandle(const std::string& handle_id) {
    ASSIGN_OR_RETURN(Entry e, store_.Get(HandleKey(handle_id)));
    ASSIGN_OR_RETURN(Handle h, DecodeHandle(e.value));
    std::vector<net::IpAddress> out;
    for (const auto& [text, count] : h.blocks) {
      std::optional<net::Prefix> cidr = net::ParsePrefix(text);
      if (!cidr) continue;
      absl::StatusOr<Entry> be = store_.Get(BlockKey(*cidr));
      if (absl::IsNotFound(be.status())) continue;
      if (!be.ok()) return be.status();
      ASSIGN_OR_RETURN(Block b, DecodeBlock(be->value));
      for (int o : b.OrdinalsOfHandle(handle_id)) out.push_back(b.AddressOf(o));
    }
    std::sort(out.begin(), out.end());
    return out;
  }

  absl::Status ReleaseNodeAffinities(const std::string& node) {
    ASSIGN_OR_RETURN(datastore::ListResult list, store_.List(AffinityPrefix(node)));
    for (const Entry& e : list.entries) {
      std::optional<net::Prefix> cidr = CidrFromKey(e.key);
      if (!cidr) continue;
      std::shared_ptr<BlockSlot> slot = state_.Slot(*cidr);
      // Empty blocks go; blocks still holding addresses lose their affinity and stay.
      RETURN_IF_ERROR(ReleaseBlockIfEmpty(*slot, node));
      BlockOp op;
      op.want_after = true;
      op.apply = [&](Block& b) -> absl::Status {
        if (b.affinity == HostAffinity(node)) b.affinity.reset();
        return absl::OkStatus();
      };
      absl::Status s = RunOp(store_, state_, *slot, op, options_.max_cas_attempts);
      if (!s.ok() && !absl::IsNotFound(s)) return s;
      // Every ipamd of the cluster releases a deleted node's affinities at about the same
      // time. If another cleared this empty block's affinity between our pendingDeletion and
      // our delete, we kept the block (no longer the node's) and so did they (pendingDeletion
      // was ours): empty, unaffine, and no later release looks at it. It goes here.
      if (s.ok() && op.after && op.after->Empty() && !op.after->affinity) {
        RETURN_IF_ERROR(ReleaseBlockIfEmpty(*slot, ""));
      }
      absl::StatusOr<Revision> d = store_.Delete(e.key, datastore::kAnyRevision);
      if (!d.ok() && !absl::IsNotFound(d.status())) return Annotate(d.status(), e.key);
      log::Info("affinity_released", {{"node", node}, {"cidr", Cidr(*cidr)}});
    }
    std::lock_guard<std::mutex> l(state_.mu);
    state_.affine.erase(node);
    return absl::OkStatus();
  }

 private:
  datastore::Datastore& store_;
  const Environment& env_;
  const AllocatorOptions& options_;
  AllocatorState& state_;
};

Allocator::Allocator(datastore::Datastore& store, Environment env, AllocatorOptions options)
    : store_(store), env_(std::move(env)), options_(options), state_(std::make_unique<AllocatorState>()) {
  if (options_.max_cas_attempts < 1) options_.max_cas_attempts = 1;
}

Allocator::~Allocator() = default;

absl::StatusOr<AutoAssignResult> Allocator::AutoAssign(const AutoAssignRequest& request) {
  return AllocatorImpl(store_, env_, options_, *state_).AutoAssign(request);
}

absl::StatusOr<Assigned> Allocator::AssignIP(const net::IpAddress& ip, const std::string& handle_id,
                                             const std::map<std::string, std::string>& attributes,
                                             const std::string& node) {
  return AllocatorImpl(store_, env_, options_, *state_).AssignIP(ip, handle_id, attributes, node);
}

absl::StatusOr<std::vector<net::IpAddress>> Allocator::ReleaseByHandle(const std::string& handle_id) {
  return AllocatorImpl(store_, env_, options_, *state_).ReleaseByHandle(handle_id);
}

absl::StatusOr<std::vector<net::IpAddress>> Allocator::ReleaseIPs(
    const std::vector<ReleaseRequest>& requests) {
  return AllocatorImpl(store_, env_, options_, *state_).ReleaseIPs(requests);
}

absl::StatusOr<std::vector<net::IpAddress>> Allocator::GetHandle(const std::string& handle_id) {
  return AllocatorImpl(store_, env_, options_, *state_).GetHandle(handle_id);
}

absl::StatusOr<std::vector<Block>> Allocator::ListBlocks() {
  return AllocatorImpl(store_, env_, options_, *state_).AllBlocks();
}

absl::Status Allocator::ReleaseNodeAffinities(const std::string& node) {
  return AllocatorImpl(store_, env_, options_, *state_).ReleaseNodeAffinities(node);
}

}  // namespace calico::ipamd
