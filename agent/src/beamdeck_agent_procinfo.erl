%%% @doc Process records and process-table scans (docs/protocol.md, ProcessRecord).
%%%
%%% Two costs, kept apart on purpose:
%%% <ul>
%%% <li>The cheap scan reads only `message_queue_len', one item per process:
%%%     that item is read without a signal round trip to the target, while
%%%     `memory' and item lists cost about ten times more. Only non-zero
%%%     lengths are kept, so an empty mailbox costs one match.</li>
%%% <li>A full record reads the dynamic items in one `process_info/2' call.
%%%     The fields that never change for a process (real initial call,
%%%     ancestors, application) are read once by `static/3' and cached by the
%%%     caller.</li>
%%% </ul>
%%% Every read tolerates the process dying under it (`undefined').
%%% `messages' is never read.
-module(beamdeck_agent_procinfo).

-export([cursor/0, next/1, mailbox_scan/1, scan/3,
         read/1, static/3, record/4, record/1, hash/1, memory/1,
         initial_call/1, dict_get/2]).

-export_type([cursor/0, dyn/0, static/0, app_cache/0, scan/0, record/0]).

%% Dynamic items of a full record; `message_queue_len' is left out because
%% the mailbox comes from the cheap scan (and must not make a record "changed").
-define(DYN_ITEMS, [registered_name, current_function, initial_call, memory,
                    reductions, status, links, parent, group_leader]).
-define(MAX_LINKS, 200).
-define(MAX_ANCESTORS, 32).
-define(MAX_APP_CACHE, 4096).

-type cursor() :: [pid()] | term().
-type dyn() :: [{atom(), term()}].
-type static() :: {InitialCall :: mfa() | undefined, Ancestors :: [term()],
                   App :: atom() | undefined}.
-type app_cache() :: #{pid() => atom() | undefined}.
-type scan() :: #{nonzero := #{pid() => pos_integer()}, new := [pid()],
                  hits := non_neg_integer(), slice := [pid()],
                  total := non_neg_integer()}.
-type record() :: #{atom() => beamdeck_agent_terms:json()}.

%%% CURSOR %%%

%% @doc Start a walk over every process: `erlang:processes_iterator/0'
%% (OTP 28, no list of every pid) when exported, else `erlang:processes/0'.
-spec cursor() -> Cursor when Cursor :: cursor().
cursor() ->
    case erlang:function_exported(erlang, processes_iterator, 0) of
        true -> erlang:processes_iterator();
        false -> erlang:processes()
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
%% `Known' is the sampler's table; `Skip' and `Take' select the slice by
%% position in the walk (known processes only). Returns the non-zero
%% mailboxes, the pids not in `Known', how many known pids were seen alive,
%% the slice and the number of processes walked.
-spec scan(Known, Skip, Take) -> scan()
    when Known :: #{pid() => term()}, Skip :: non_neg_integer(), Take :: non_neg_integer().
scan(Known, Skip, Take) ->
    scan_loop(cursor(), Known, Skip, Take, #{}, [], 0, [], 0).

scan_loop(C, Known, Skip, Take, NZ, New, Hits, Slice, Total) ->
    case next(C) of
        none ->
            #{nonzero => NZ, new => lists:reverse(New), hits => Hits,
              slice => lists:reverse(Slice), total => Total};
        {P, Rest} ->
            case erlang:process_info(P, message_queue_len) of
                undefined ->
                    scan_loop(Rest, Known, Skip, Take, NZ, New, Hits, Slice, Total);
                {message_queue_len, N} ->
                    NZ1 = case N of
                              0 -> NZ;
                              _ -> NZ#{P => N}
                          end,
                    case Known of
                        #{P := _} when Skip > 0 ->
                            scan_loop(Rest, Known, Skip - 1, Take, NZ1, New, Hits + 1,
                                      Slice, Total + 1);
                        #{P := _} when Take > 0 ->
                            scan_loop(Rest, Known, 0, Take - 1, NZ1, New, Hits + 1,
                                      [P | Slice], Total + 1);
                        #{P := _} ->
                            scan_loop(Rest, Known, 0, 0, NZ1, New, Hits + 1, Slice,
                                      Total + 1);
                        _ ->
                            scan_loop(Rest, Known, Skip, Take, NZ1, [P | New], Hits,
                                      Slice, Total + 1)
                    end
            end
    end.

%%% RECORDS %%%

%% @doc The dynamic items of one process in one call, or `undefined' if it is gone.
-spec read(Pid) -> dyn() | undefined when Pid :: pid().
read(Pid) -> erlang:process_info(Pid, ?DYN_ITEMS).

%% @doc The fields that never change for a process: its real initial call
%% (`$initial_call' for proc_lib processes), its `$ancestors' and its
%% application (found from the group leader, cached in `Apps').
%% `undefined' if the process is gone.
-spec static(Pid, Dyn, Apps) -> {static(), Apps} | undefined
    when Pid :: pid(), Dyn :: dyn(), Apps :: app_cache().
static(Pid, Dyn, Apps) ->
    case dict_values(Pid) of
        undefined -> undefined;
        {InitialCall, Ancestors} ->
            IC = case InitialCall of
                     {M, F, A} when is_atom(M), is_atom(F), is_integer(A) -> InitialCall;
                     _ -> mfa_or_undefined(item(initial_call, Dyn))
                 end,
            {App, Apps1} = app(item(group_leader, Dyn), Apps),
            {{IC, ancestors(Ancestors), App}, Apps1}
    end.

%% @doc A ProcessRecord map from a read/1 result, the cached static fields and
%% the mailbox length (taken from the scan so record and scan agree).
-spec record(Pid, Dyn, Static, Mailbox) -> record()
    when Pid :: pid(), Dyn :: dyn(), Static :: static(), Mailbox :: non_neg_integer().
record(Pid, Dyn, {IC, Ancestors, App}, Mailbox) ->
    #{pid => beamdeck_agent_terms:pid(Pid),
      name => beamdeck_agent_terms:maybe_atom(item(registered_name, Dyn)),
      initialCall => beamdeck_agent_terms:maybe_mfa(IC),
      currentFunction => beamdeck_agent_terms:maybe_mfa(item(current_function, Dyn)),
      mailbox => beamdeck_agent_terms:int(Mailbox),
      memory => beamdeck_agent_terms:int(item(memory, Dyn)),
      reductions => beamdeck_agent_terms:int(item(reductions, Dyn)),
      status => beamdeck_agent_terms:atom(item(status, Dyn)),
      links => [beamdeck_agent_terms:pid(L) || L <- lists:sublist(item(links, Dyn), ?MAX_LINKS)],
      parent => beamdeck_agent_terms:maybe_pid(item(parent, Dyn)),
      ancestors => [ancestor_text(A) || A <- Ancestors],
      application => beamdeck_agent_terms:maybe_atom(App)}.

%% @doc The full record of one process, nothing cached; `undefined' if it is gone.
-spec record(Pid) -> {ok, record()} | undefined when Pid :: pid().
record(Pid) ->
    maybe_record(Pid, read(Pid)).

maybe_record(_Pid, undefined) -> undefined;
maybe_record(Pid, Dyn) ->
    case {static(Pid, Dyn, #{}), erlang:process_info(Pid, message_queue_len)} of
        {{Static, _}, {message_queue_len, N}} -> {ok, record(Pid, Dyn, Static, N)};
        _ -> undefined
    end.

%% @doc A hash of the dynamic items: equal hashes mean an unchanged record
%% (the mailbox is not part of it).
-spec hash(Dyn) -> non_neg_integer() when Dyn :: dyn().
hash(Dyn) -> erlang:phash2(Dyn).

%% @doc The memory item of a read/1 result.
-spec memory(Dyn) -> non_neg_integer() when Dyn :: dyn().
memory(Dyn) -> item(memory, Dyn).

%% @doc A process's real initial call: `$initial_call' for proc_lib
%% processes, else the `initial_call' item; `undefined' if it is gone.
-spec initial_call(Pid) -> mfa() | undefined when Pid :: pid().
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

%% `$initial_call' and `$ancestors' with one read where possible.
dict_values(Pid) ->
    case dict_key_supported() of
        true ->
            case {dict_get(Pid, '$initial_call'), dict_get(Pid, '$ancestors')} of
                {gone, _} -> undefined;
                {_, gone} -> undefined;
                {IC, Anc} -> {ok_value(IC), ok_value(Anc)}
            end;
        false ->
            case erlang:process_info(Pid, dictionary) of
                undefined -> undefined;
                {dictionary, Dict} ->
                    {proplists:get_value('$initial_call', Dict),
                     proplists:get_value('$ancestors', Dict)}
            end
    end.

ok_value({ok, V}) -> V;
ok_value(_) -> undefined.

%% `process_info(P, {dictionary, Key})' exists from OTP 26.2; probing our own
%% process costs no signal and no lock on another process.
dict_key_supported() ->
    try erlang:process_info(self(), {dictionary, '$beamdeck_probe'}) of
        _ -> true
    catch
        error:badarg -> false
    end.

ancestors(L) when is_list(L) -> lists:sublist(L, ?MAX_ANCESTORS);
ancestors(_) -> [].

ancestor_text(P) when is_pid(P) -> beamdeck_agent_terms:pid(P);
ancestor_text(A) -> beamdeck_agent_terms:id_text(A).

app(GL, Apps) when is_pid(GL) ->
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

item(Key, Dyn) ->
    {Key, Value} = lists:keyfind(Key, 1, Dyn),
    Value.
