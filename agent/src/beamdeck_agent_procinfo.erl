%%% @doc Process records and process-table scans (docs/protocol.md, ProcessRecord).
%%%
%%% Over 400 lines because the scan has two walks (a list before OTP 28, the
%%% iterator after) that must stay side by side to stay equal.
%%%
%%% Two costs, kept apart on purpose:
%%% <ul>
%%% <li>The cheap scan reads only `message_queue_len', one item per process;
%%%     `memory' alone or a list of items costs about ten times more (measured
%%%     on OTP 25: ~0.12 us against ~1.6-2 us a process). Only non-zero
%%%     lengths are kept, so an empty mailbox costs one match.</li>
%%% <li>A full record reads the dynamic items in one `process_info/2' call.
%%%     The fields that never change for a process (real initial call,
%%%     ancestors, application) are read once, by `read_new/2' in the same
%%%     call, and cached by the caller.</li>
%%% </ul>
%%% Every read tolerates the process dying under it (`undefined').
%%% `messages' is never read.
-module(beamdeck_agent_procinfo).

-export([cursor/0, next/1, mailbox_scan/1, scan/4,
         read/1, read_new/2, record/4, record/1, hash/1, memory/1, reductions/1,
         initial_call/1, dict_get/2, cursor_mode/0, dict_mode/0]).

-export_type([cursor/0, dyn/0, static/0, app_cache/0, scan/0, proc_record/0]).

%% OTP 28 (`processes_iterator') and OTP 26.2 (`{dictionary, Key}') paths,
%% behind runtime checks: unknown to an OTP 25 PLT.
-dialyzer({no_missing_calls, [cursor/0, next/1]}).
-dialyzer({no_fail_call, [dict_get/2, dict_key_supported/0]}).

%% Dynamic items of a full record; `message_queue_len' is left out because
%% the mailbox comes from the cheap scan (and must not make a record "changed").
-define(DYN_ITEMS, [registered_name, current_function, initial_call, memory,
                    reductions, status, links, parent, group_leader]).
-define(MAX_LINKS, 200).
-define(MAX_ANCESTORS, 32).
-define(MAX_APP_CACHE, 4096).
%% How far the scan looks ahead in the previous walk before it gives up.
-define(LOOKAHEAD, 32).
-define(DICT_KEY_PT, {?MODULE, dict_key_supported}).

-type cursor() :: [pid()] | term().
%% registered_name, current_function, initial_call, memory, reductions,
%% status, links, parent, group_leader.
-type dyn() :: {atom() | [], mfa() | undefined, mfa(), non_neg_integer(), non_neg_integer(),
                atom(), [pid() | port()], pid() | undefined, pid()}.
%% Label: for a process started from an anonymous fun, the module of its
%% stack frames (`beamdeck_agent_find:label/2'), read once.
-type static() :: {InitialCall :: mfa() | undefined, Ancestors :: [term()],
                   App :: atom() | undefined, Label :: binary() | null}.
-type app_cache() :: #{pid() => atom() | undefined}.
-type scan() :: #{nonzero := #{pid() => pos_integer()}, new := [pid()],
                  hits := non_neg_integer(), slice := [pid()],
                  total := non_neg_integer(), walked := [pid()], gone := [pid()]}.
-type proc_record() :: #{atom() => beamdeck_agent_terms:json()}.

%%% CURSOR %%%

%% @doc Start a walk over every process: `erlang:processes_iterator/0'
%% (OTP 28, no list of every pid) when exported, else `erlang:processes/0'.
-spec cursor() -> Cursor when Cursor :: cursor().
cursor() ->
    case cursor_mode() of
        iterator -> erlang:processes_iterator();
        list -> erlang:processes()
    end.

%% @doc How cursor/0 walks the processes on this node: `iterator' (OTP 28+)
%% or `list'.
-spec cursor_mode() -> iterator | list.
cursor_mode() ->
    case erlang:function_exported(erlang, processes_iterator, 0) of
        true -> iterator;
        false -> list
    end.

%% @doc How one dictionary key is read on this node: `key' reads only that
%% key (`{dictionary, Key}', OTP 26.2+), `full' copies the whole dictionary.
-spec dict_mode() -> key | full.
dict_mode() ->
    case dict_key_supported() of
        true -> key;
        false -> full
    end.

%% @doc The next pid of a walk started by cursor/0, or `none'.
-spec next(Cursor) -> {pid(), Cursor} | none when Cursor :: cursor().
next([P | Ps]) -> {P, Ps};
next([]) -> none;
next(Iter) -> erlang:processes_next(Iter).

%%% SCANS %%%

%% @doc The cheap scan alone: every process's mailbox length.
%% `Prev' holds the non-zero lengths of the previous scan; returns the new
%% non-zero map and `[{Pid, Len}]' for every length that changed (0 for a
%% mailbox that emptied in a process that is still alive).
-spec mailbox_scan(Prev) -> {NonZero, Changed}
    when Prev :: #{pid() => pos_integer()}, NonZero :: #{pid() => pos_integer()},
         Changed :: [{pid(), non_neg_integer()}].
mailbox_scan(Prev) ->
    NonZero = mailbox_loop(cursor(), #{}),
    {NonZero, mailbox_changes(NonZero, Prev)}.

mailbox_loop(C, Acc) ->
    case next(C) of
        none -> Acc;
        {P, Rest} ->
            case erlang:process_info(P, message_queue_len) of
                {message_queue_len, 0} -> mailbox_loop(Rest, Acc);
                {message_queue_len, N} -> mailbox_loop(Rest, Acc#{P => N});
                undefined -> mailbox_loop(Rest, Acc)
            end
    end.

mailbox_changes(NonZero, Prev) ->
    Grown = maps:fold(fun(P, N, Acc) ->
                              case Prev of
                                  #{P := N} -> Acc;
                                  _ -> [{P, N} | Acc]
                              end
                      end, [], NonZero),
    maps:fold(fun(P, _, Acc) ->
                      case is_map_key(P, NonZero) orelse not is_process_alive(P) of
                          true -> Acc;
                          false -> [{P, 0} | Acc]
                      end
              end, Grown, Prev).

%% @doc The sampler's scan: the cheap mailbox scan fused with the membership
%% check and the choice of the rolling-refresh slice, in one walk.
%% `Known' is the sampler's table: a map, or a membership test (its ETS
%% rows, beamdeck_agent_rows). `Prev' is the `walked' list of the
%% previous scan: `erlang:processes/0' lists processes in process-table
%% order, so walking `Prev' alongside makes "known?" one comparison for
%% almost every process; a map lookup is the fallback for the rest (new,
%% or after a gap of dead ones). `Skip' and `Take' select the slice by
%% position among known processes. Returns the non-zero mailboxes, the pids
%% not in `Known', how many known pids were seen alive, the slice, the
%% number of processes walked, the walked list for the next scan (`[]'
%% on the OTP 28 iterator path, where there is no list) and the pids of the
%% previous walk found dead (`gone'; not always all of them: see
%% beamdeck_agent_sampler's dead/4). `Known' = `none' (a reset: nothing is
%% known): every process is new, and on the list path `new' is the walked
%% list itself (dead ones included: their reads find them gone), so a reset
%% at 100k processes holds one list of pids, not three.
-spec scan(Known, Prev, Skip, Take) -> scan()
    when Known :: #{pid() => term()} | fun((pid()) -> boolean()) | none, Prev :: [pid()],
         Skip :: non_neg_integer(), Take :: non_neg_integer().
scan(none, _Prev, _Skip, _Take) ->
    case cursor() of
        Walked when is_list(Walked) ->
            {NZ, Total} = mailboxes(Walked, #{}, 0),
            #{nonzero => NZ, new => Walked, hits => 0, slice => [], total => Total,
              walked => Walked, gone => []};
        _ ->
            scan(#{}, [], 0, 0)
    end;
scan(Known, Prev, Skip, Take) ->
    Cursor = cursor(),
    Walked = case is_list(Cursor) of
                 true -> Cursor;
                 false -> []
             end,
    Result = scan_loop(Cursor, Prev, Known, Skip, Take, #{}, [], 0, [], 0, []),
    Result#{walked => Walked}.

scan_loop(C, Prev, Known, Skip, Take, NZ, New, Hits, Slice, Total, Gone) ->
    case next(C) of
        none ->
            %% The end of the previous walk not reached (usually the last
            %% spawned, e.g. short-lived workers) is checked here.
            Tail = [Q || Q <- Prev, not erlang:is_process_alive(Q)],
            #{nonzero => NZ, new => lists:reverse(New), hits => Hits,
              slice => lists:reverse(Slice), total => Total, gone => Tail ++ Gone};
        {P, Rest} ->
            case erlang:process_info(P, message_queue_len) of
                undefined ->
                    scan_loop(Rest, Prev, Known, Skip, Take, NZ, New, Hits, Slice, Total, Gone);
                {message_queue_len, N} ->
                    NZ1 = case N of
                              0 -> NZ;
                              _ -> NZ#{P => N}
                          end,
                    case known(P, Prev, Known, Gone) of
                        {Prev1, Gone1} when Skip > 0 ->
                            scan_loop(Rest, Prev1, Known, Skip - 1, Take, NZ1, New, Hits + 1,
                                      Slice, Total + 1, Gone1);
                        {Prev1, Gone1} when Take > 0 ->
                            scan_loop(Rest, Prev1, Known, 0, Take - 1, NZ1, New, Hits + 1,
                                      [P | Slice], Total + 1, Gone1);
                        {Prev1, Gone1} ->
                            scan_loop(Rest, Prev1, Known, 0, 0, NZ1, New, Hits + 1, Slice,
                                      Total + 1, Gone1);
                        false ->
                            scan_loop(Rest, Prev, Known, Skip, Take, NZ1, [P | New], Hits,
                                      Slice, Total + 1, Gone)
                    end
            end
    end.

%% The non-zero mailboxes of `Pids' and how many are alive.
mailboxes([], NZ, Total) -> {NZ, Total};
mailboxes([P | Ps], NZ, Total) ->
    case erlang:process_info(P, message_queue_len) of
        undefined -> mailboxes(Ps, NZ, Total);
        {message_queue_len, 0} -> mailboxes(Ps, NZ, Total + 1);
        {message_queue_len, N} -> mailboxes(Ps, NZ#{P => N}, Total + 1)
    end.

%% Known: where the previous walk continues, and the pids of the previous
%% walk found dead on the way (`Gone'). Not known: `false'.
known(P, [P | Prev], _Known, Gone) -> {Prev, Gone};
known(P, Prev, Known, Gone) ->
    case is_known(P, Known) of
        true -> resync(Prev, P, Gone);
        false -> false
    end.

is_known(P, Known) when is_map(Known) -> is_map_key(P, Known);
is_known(P, Member) -> Member(P).

%% `P' is known but not next in the previous walk: drop the dead pids before
%% it (each is dropped once, and kept in `Gone'), or look a little further;
%% else stay put.
resync([P | Rest], P, Gone) -> {Rest, Gone};
resync([Q | Rest] = Prev, P, Gone) ->
    case erlang:is_process_alive(Q) of
        false -> resync(Rest, P, [Q | Gone]);
        true -> {lookahead(Rest, P, ?LOOKAHEAD, Prev), Gone}
    end;
resync([], _P, Gone) -> {[], Gone}.

lookahead([P | Rest], P, _, _Orig) -> Rest;
lookahead([_ | Rest], P, N, Orig) when N > 0 -> lookahead(Rest, P, N - 1, Orig);
lookahead(_, _P, _, Orig) -> Orig.

%%% RECORDS %%%

%% @doc The dynamic items of one process in one call, or `undefined' if it is gone.
-spec read(Pid) -> dyn() | undefined when Pid :: pid().
read(Pid) ->
    case erlang:process_info(Pid, ?DYN_ITEMS) of
        undefined -> undefined;
        Items -> dyn(Items)
    end.

%% @doc First read of a process: the dynamic items and the fields that never
%% change (its real initial call, `$ancestors', its application found from
%% the group leader and cached in `Apps'), in one `process_info/2' call.
%% `undefined' if the process is gone.
-spec read_new(Pid, Apps) -> {dyn(), static(), Apps} | undefined
    when Pid :: pid(), Apps :: app_cache().
read_new(Pid, Apps) ->
    case dict_key_supported() of
        true ->
            Keys = [{dictionary, '$initial_call'}, {dictionary, '$ancestors'}],
            case erlang:process_info(Pid, ?DYN_ITEMS ++ Keys) of
                undefined -> undefined;
                Items ->
                    {DynItems, [{_, IC}, {_, Anc}]} = lists:split(length(?DYN_ITEMS), Items),
                    new_static(Pid, dyn(DynItems), IC, Anc, Apps)
            end;
        false ->
            case erlang:process_info(Pid, ?DYN_ITEMS ++ [dictionary]) of
                undefined -> undefined;
                Items ->
                    {DynItems, [{dictionary, Dict}]} = lists:split(length(?DYN_ITEMS), Items),
                    new_static(Pid, dyn(DynItems), dict_value('$initial_call', Dict),
                               dict_value('$ancestors', Dict), Apps)
            end
    end.

new_static(Pid, Dyn, InitialCall, Ancestors, Apps) ->
    IC = case InitialCall of
             {M, F, A} when is_atom(M), is_atom(F), is_integer(A) -> InitialCall;
             _ -> mfa_or_undefined(element(3, Dyn))
         end,
    {App, Apps1} = app(element(9, Dyn), Apps),
    {Dyn, {IC, ancestors(Ancestors), App, beamdeck_agent_find:label(Pid, IC)}, Apps1}.

%% @doc A ProcessRecord map from a read result, the cached static fields and
%% the mailbox length (taken from the scan so record and scan agree).
-spec record(Pid, Dyn, Static, Mailbox) -> proc_record()
    when Pid :: pid(), Dyn :: dyn(), Static :: static(), Mailbox :: non_neg_integer().
record(Pid, {Reg, CF, _IC, Mem, Reds, Status, Links, Parent, _GL}, {IC, Ancestors, App, Label}, Mailbox) ->
    Record = #{pid => beamdeck_agent_terms:pid(Pid),
      name => beamdeck_agent_terms:maybe_atom(Reg),
      initialCall => beamdeck_agent_terms:maybe_mfa(IC),
      currentFunction => beamdeck_agent_terms:maybe_mfa(CF),
      mailbox => beamdeck_agent_terms:int(Mailbox),
      memory => beamdeck_agent_terms:int(Mem),
      reductions => beamdeck_agent_terms:int(Reds),
      status => beamdeck_agent_terms:atom(Status),
      links => links(Links, ?MAX_LINKS),
      parent => beamdeck_agent_terms:maybe_pid(Parent),
      ancestors => [ancestor_text(A) || A <- Ancestors],
      application => beamdeck_agent_terms:maybe_atom(App)},
    %% Optional (capability `labels'): only anonymous-fun processes have one.
    case Label of
        null -> Record;
        _ -> Record#{label => Label}
    end.

%% @doc The full record of one process, nothing cached; `undefined' if it is gone.
-spec record(Pid) -> {ok, proc_record()} | undefined when Pid :: pid().
record(Pid) ->
    case read_new(Pid, #{}) of
        undefined -> undefined;
        {Dyn, Static, _} ->
            case erlang:process_info(Pid, message_queue_len) of
                {message_queue_len, N} -> {ok, record(Pid, Dyn, Static, N)};
                undefined -> undefined
            end
    end.

%% @doc A hash of the dynamic items but the reductions: equal hashes and
%% nearly equal reductions mean an unchanged record. Reductions are apart
%% because every `process_info/2' that signals a process (ours too) adds one.
-spec hash(Dyn) -> non_neg_integer() when Dyn :: dyn().
hash(Dyn) -> erlang:phash2(setelement(5, Dyn, 0)).

%% @doc The memory of a read result.
-spec memory(Dyn) -> non_neg_integer() when Dyn :: dyn().
memory(Dyn) -> element(4, Dyn).

%% @doc The reductions of a read result.
-spec reductions(Dyn) -> non_neg_integer() when Dyn :: dyn().
reductions(Dyn) -> element(5, Dyn).

%% @doc A process's real initial call: `$initial_call' for proc_lib
%% processes, else the `initial_call' item; `undefined' if it is gone.
-spec initial_call(Pid) -> mfa() | undefined when Pid :: pid().
initial_call(Pid) when node(Pid) =/= node() -> undefined;
initial_call(Pid) ->
    case dict_get(Pid, '$initial_call') of
        {ok, {M, F, A} = MFA} when is_atom(M), is_atom(F), is_integer(A) -> MFA;
        gone -> undefined;
        _ ->
            case erlang:process_info(Pid, initial_call) of
                {initial_call, MFA} -> mfa_or_undefined(MFA);
                undefined -> undefined
            end
    end.

%% @doc One key of a process's dictionary: `{ok, Value}', `undefined' when
%% the key is absent, `gone' when the process is. Reads only that key where
%% the runtime supports `{dictionary, Key}' (OTP 26.2+), else the whole
%% dictionary once.
-spec dict_get(Pid, Key) -> {ok, term()} | undefined | gone when Pid :: pid(), Key :: term().
dict_get(Pid, Key) ->
    case dict_key_supported() of
        true ->
            case erlang:process_info(Pid, {dictionary, Key}) of
                undefined -> gone;
                {_, undefined} -> undefined;
                {_, Value} -> {ok, Value}
            end;
        false ->
            case erlang:process_info(Pid, dictionary) of
                undefined -> gone;
                {dictionary, Dict} ->
                    case lists:keyfind(Key, 1, Dict) of
                        {Key, Value} -> {ok, Value};
                        false -> undefined
                    end
            end
    end.

%%% INTERNALS %%%

dict_value(Key, Dict) ->
    case lists:keyfind(Key, 1, Dict) of
        {Key, Value} -> Value;
        false -> undefined
    end.

%% `process_info(P, {dictionary, Key})' exists from OTP 26.2 (also as an
%% item of a list). Probed once on our own process, remembered for the node's
%% lifetime: the answer cannot change without a restart of the emulator.
dict_key_supported() ->
    case persistent_term:get(?DICT_KEY_PT, undefined) of
        undefined ->
            Supported = try erlang:process_info(self(), {dictionary, '$beamdeck_probe'}) of
                            _ -> true
                        catch
                            error:badarg -> false
                        end,
            persistent_term:put(?DICT_KEY_PT, Supported),
            Supported;
        Supported ->
            Supported
    end.

ancestors(L) when is_list(L) -> lists:sublist(L, ?MAX_ANCESTORS);
ancestors(_) -> [].

ancestor_text(P) when is_pid(P) -> beamdeck_agent_terms:pid(P);
ancestor_text(A) -> beamdeck_agent_terms:id_text(A).

%% A process started over rpc has a remote group leader: no local application.
app(GL, Apps) when is_pid(GL), node(GL) =:= node() ->
    case Apps of
        #{GL := App} -> {App, Apps};
        _ ->
            %% An application master is its own group leader, so the
            %% documented get_application/1 on the leader names the app.
            App = case application:get_application(GL) of
                      {ok, A} -> A;
                      undefined -> undefined
                  end,
            Apps1 = case map_size(Apps) >= ?MAX_APP_CACHE of
                        true -> #{};
                        false -> Apps
                    end,
            {App, Apps1#{GL => App}}
    end;
app(_, Apps) -> {undefined, Apps}.

mfa_or_undefined({M, F, A} = MFA) when is_atom(M), is_atom(F), is_integer(A) -> MFA;
mfa_or_undefined(_) -> undefined.

%% The items come back in the order asked for (?DYN_ITEMS).
dyn([{registered_name, Reg}, {current_function, CF}, {initial_call, IC}, {memory, Mem},
     {reductions, Reds}, {status, Status}, {links, Links}, {parent, Parent},
     {group_leader, GL}]) ->
    {Reg, CF, IC, Mem, Reds, Status, Links, Parent, GL}.

links(Links, Max) -> links(Links, Max, []).

links([], _, Acc) -> lists:reverse(Acc);
links(_, 0, Acc) -> lists:reverse(Acc);
links([L | Ls], N, Acc) -> links(Ls, N - 1, [beamdeck_agent_terms:pid(L) | Acc]).
