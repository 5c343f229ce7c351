%%% @doc The sampler's compact per-process rows (issue 17): one ETS `set'
%%% row per known process, `{Pid, HashReds, Memory, StaticRef}', integers
%%% only, owned by the process that called new/0. `HashReds' packs the
%%% record's hash (phash2, 27 bits) and the reductions as last sent, modulo
%%% 2^32 (only their growth is asked, reds_grown/2) into one small integer:
%%% one element less is 8 of 88 bytes a row (0.8 MB at 100k processes).
%%%
%%% Why ETS and not a map in the sampler's heap: a map of 100k entries is
%%% copied by every garbage collection of the sampler (and by hibernation),
%%% so the heap held two or three copies of the table at once; rows in ETS
%%% are never copied by a GC, and the sampler's heap stays the size of one
%%% tick's work.
%%%
%%% The static fields (initial call, ancestors, application, label) are the
%%% same for many processes (every worker of one pool), and ETS would copy
%%% them into every row: they are stored once in an id table and the row
%%% holds the id. Once the id table holds `?MAX_STATICS' distinct values the
%%% rest are stored in their rows (bounded, and still correct). clear/1
%%% empties both tables.
-module(beamdeck_agent_rows).

-export([new/0, delete/1, clear/1, size/1, statics/1, member/2, get/2, memory/2, put/3,
         update/5, remove/2, keys/1, top_memory/2, dead/1, reds_grown/2]).

-export_type([rows/0, entry/0]).

-define(MAX_STATICS, 10000).
%% Reductions are kept modulo 2^32, beside a 27-bit hash: 59 bits, a small
%% integer on 64-bit emulators.
-define(REDS_BITS, 32).
-define(REDS_MASK, ((1 bsl ?REDS_BITS) - 1)).

-record(rows, {rows :: ets:tid(), ids :: ets:tid()}).
-opaque rows() :: #rows{}.
%% Hash and reductions (modulo 2^32) as last sent, memory as last read,
%% static fields.
-type entry() :: {Hash :: non_neg_integer(), Reductions :: non_neg_integer(),
                  Memory :: non_neg_integer(), beamdeck_agent_procinfo:static()}.

%% @doc Empty rows, owned by the caller (they go when it exits).
-spec new() -> rows().
new() ->
    %% `ids' holds `{Id, Static}' and `{Static, Id}': integer and tuple keys never collide.
    #rows{rows = ets:new(beamdeck_agent_rows, [set, private]),
          ids = ets:new(beamdeck_agent_rows_ids, [set, private])}.

%% @doc Free the tables.
-spec delete(rows()) -> ok.
delete(#rows{rows = R, ids = I}) ->
    true = ets:delete(R),
    true = ets:delete(I),
    ok.

%% @doc Forget every row and every shared static value.
-spec clear(rows()) -> ok.
clear(#rows{rows = R, ids = I}) ->
    true = ets:delete_all_objects(R),
    true = ets:delete_all_objects(I),
    ok.

%% @doc How many processes have a row.
-spec size(rows()) -> non_neg_integer().
size(#rows{rows = R}) -> ets:info(R, size).

%% @doc How many distinct static values are shared through the id table.
-spec statics(rows()) -> non_neg_integer().
statics(#rows{ids = I}) -> ets:info(I, size) div 2.

%% @doc Whether `Pid' has a row.
-spec member(rows(), pid()) -> boolean().
member(#rows{rows = R}, Pid) -> ets:member(R, Pid).

%% @doc The row of `Pid' with its static fields, or `undefined'.
-spec get(rows(), pid()) -> entry() | undefined.
get(#rows{rows = R, ids = I}, Pid) ->
    case ets:lookup(R, Pid) of
        [{_, HashReds, Mem, Ref}] ->
            {HashReds bsr ?REDS_BITS, HashReds band ?REDS_MASK, Mem, static(I, Ref)};
        [] -> undefined
    end.

%% @doc The memory as last read of `Pid', or `undefined' if it has no row.
-spec memory(rows(), pid()) -> non_neg_integer() | undefined.
memory(#rows{rows = R}, Pid) ->
    case ets:lookup(R, Pid) of
        [{_, _, Mem, _}] -> Mem;
        [] -> undefined
    end.

%% @doc Insert or replace the row of `Pid'.
-spec put(rows(), pid(), entry()) -> ok.
put(#rows{rows = R, ids = I}, Pid, {Hash, Reds, Mem, Static}) ->
    true = ets:insert(R, {Pid, hash_reds(Hash, Reds), Mem, intern(I, Static)}),
    ok.

%% @doc Change the counters of a row, its static fields kept; `false' if
%% `Pid' has no row.
-spec update(rows(), pid(), non_neg_integer(), non_neg_integer(), non_neg_integer()) -> boolean().
update(#rows{rows = R}, Pid, Hash, Reds, Mem) ->
    ets:update_element(R, Pid, [{2, hash_reds(Hash, Reds)}, {3, Mem}]).

%% @doc How much `Reds' (a process's reductions now) grew since `Sent' (as
%% get/2 returns them: modulo 2^32).
-spec reds_grown(Sent, Reds) -> non_neg_integer()
    when Sent :: non_neg_integer(), Reds :: non_neg_integer().
reds_grown(Sent, Reds) -> (Reds - Sent) band ?REDS_MASK.

%% @doc Remove the rows of `Pids'.
-spec remove(rows(), [pid()]) -> ok.
remove(#rows{rows = R}, Pids) ->
    lists:foreach(fun(P) -> true = ets:delete(R, P) end, Pids).

%% @doc Every pid with a row (for small row sets: partial mode's hot spots).
-spec keys(rows()) -> [pid()].
keys(#rows{rows = R}) ->
    ets:select(R, [{{'$1', '_', '_', '_'}, [], ['$1']}]).

%% @doc The `N' pids with the largest memory as last read, largest first;
%% one pass over the rows, nothing sorted but the `N' held.
-spec top_memory(rows(), integer()) -> [pid()].
top_memory(#rows{rows = R}, N) ->
    beamdeck_agent_hotspots:top_fold(
      fun(Add, Acc0) -> ets:foldl(fun({P, _, Mem, _}, Acc) -> Add({Mem, P}, Acc) end, Acc0, R) end,
      N).

%% @doc The pids with a row whose process is no longer alive.
-spec dead(rows()) -> [pid()].
dead(#rows{rows = R}) ->
    ets:foldl(fun({P, _, _, _}, Acc) ->
                      case erlang:is_process_alive(P) of
                          true -> Acc;
                          false -> [P | Acc]
                      end
              end, [], R).

%% A hash (phash2: under 2^27) and reductions modulo 2^32 in one integer.
hash_reds(Hash, Reds) -> (Hash bsl ?REDS_BITS) bor (Reds band ?REDS_MASK).

%% The id of a shared static value (a new one if there is room), or the
%% value itself when the id table is full.
intern(I, Static) ->
    case ets:lookup(I, Static) of
        [{_, Id}] -> Id;
        [] ->
            case ets:info(I, size) div 2 of
                N when N >= ?MAX_STATICS -> Static;
                N ->
                    Id = N + 1,
                    true = ets:insert(I, [{Static, Id}, {Id, Static}]),
                    Id
            end
    end.

static(I, Id) when is_integer(Id) -> ets:lookup_element(I, Id, 2);
static(_I, Static) -> Static.
