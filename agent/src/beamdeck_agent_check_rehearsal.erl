%%% @doc The code_change rehearsal (issue 13): run the target release's
%%% `code_change' on a copy of each affected process's real state in a
%%% temporary peer node, and evaluate updated supervisors' new `init/1'
%%% there, before the live node takes the risk.
%%%
%%% - `code_change_crash' (error): the new `code_change/3' (gen_statem:
%%%   `/4'; a supervisor: its `init/1') raises or times out on the state;
%%%   identical outcomes are one finding with every pid (id
%%%   `code_change_crash:M:Class:ErrorAtom'). After `point_of_no_return'
%%%   release_handler answers such a crash by restarting the node from the
%%%   old release.
%%% - `supervisor_children_changed' (warning): the new `init/1' returns
%%%   other child ids than `which_children' lists now; release_handler
%%%   starts and stops none of them.
%%% - `rehearsal_inconclusive' (info): the peer could not decide (a
%%%   `badarg' or `noproc' there: the state holds ETS tables, pids or ports
%%%   of the live node that the peer lacks), or the rehearsal could not run
%%%   (no unpacked target, no peer, state too large, budget spent).
%%%
%%% The peer (OTP's `peer', `connection => standard_io': no epmd, no
%%% cookie, no distribution) boots the target release's own boot script
%%% with every application start but kernel's and stdlib's removed, so it
%%% has the target's code path and modules, and its sys.config. It never
%%% sees the live node's processes, gets a heap cap per process (`+hmax'),
%%% each call has a timeout, and it is always stopped.
%%%
%%% The state is copied with `sys:get_state/2' even when showing state is
%%% off: it never leaves the node. With it off (beamdeck_agent_detail:
%%% values_visible/0) a crash is reported as class, error atom and frames.
-module(beamdeck_agent_check_rehearsal).

-export([check/1, outcome/2, group/1, child_ids/1]).

-define(MAX_PROCS, 1000).
-define(CALL_TIMEOUT, 2000).
-define(STATE_TIMEOUT, 1000).
-define(MAX_STATE_WORDS, 4000000).
-define(MAX_FRAMES, 5).
-define(REASON_CAP, 300).

-type outcome() :: ok | {crash, atom(), term(), list()} | {inconclusive, binary()}
                 | {inconclusive_crash, atom(), term(), list()}.

%% @doc The findings of this check for the plan's context.
-spec check(Ctx) -> [beamdeck_agent_findings:finding()] when Ctx :: beamdeck_agent_checks:context().
check(#{mods := Mods, path := Path, beams := Beams, deadline := Deadline}) ->
    Changing = [{M, Mode, Extra} || #{module := M, code_change := {Mode, Extra}} <- Mods],
    case Changing of
        [] -> [];
        _ ->
            Supervised = beamdeck_agent_tree:supervised([M || {M, _, _} <- Changing], 3000),
            Targets = lists:sublist(
                        [{M, Mode, Extra, P, Kind}
                         || {M, Mode, Extra} <- Changing, P <- maps:get(M, Supervised, []),
                            Kind <- [kind(P, M)], Kind =/= other], ?MAX_PROCS),
            case Targets of
                [] -> [];
                _ ->
                    case beamdeck_agent_check_peer:with_peer(
                           Path, Deadline, fun(Peer) -> rehearse(Peer, Targets, Beams, Deadline) end) of
                        {ok, Findings} -> Findings;
                        {error, Why} ->
                            [inconclusive(null, <<"no_peer">>, [], Why,
                                          <<"unpack the release and check that the node can start a "
                                            "child OS process (erts' erlexec), then plan again">>)]
                    end
            end
    end.

%% The behaviour of P, if M is its callback module: what to rehearse.
kind(P, M) ->
    case process_info(P, dictionary) of
        {dictionary, D} ->
            case lists:keyfind('$initial_call', 1, D) of
                {_, {supervisor, M, 1}} -> supervisor;
                {_, {M, init, 1}} -> gen_callback(P);
                _ -> other
            end;
        undefined -> other
    end.

gen_callback(P) ->
    case beamdeck_agent_otp:call(fun() -> sys:get_status(P, ?STATE_TIMEOUT) end, ?STATE_TIMEOUT + 200) of
        {ok, {status, _, {module, gen_statem}, _}} -> gen_statem;
        {ok, {status, _, {module, gen_server}, _}} -> gen_server;
        _ -> other
    end.

%%% REHEARSAL %%%

rehearse(Peer, Targets, Beams, Deadline) ->
    Results = [{M, P, Kind, run_one(Peer, M, Mode, Extra, P, Kind, Beams, Deadline)}
               || {M, Mode, Extra, P, Kind} <- Targets],
    Sups = [{M, P, Ids} || {M, P, supervisor, {children, Ids}} <- Results],
    Outcomes = [{M, P, O} || {M, P, _, O} <- Results, not is_tuple(O) orelse element(1, O) =/= children],
    group(Outcomes) ++ lists:append([children_finding(M, P, Ids) || {M, P, Ids} <- Sups]).

run_one(Peer, M, Mode, Extra, P, Kind, Beams, Deadline) ->
    case now_ms() < Deadline of
        false -> {inconclusive, <<"budget">>};
        true ->
            case get_state(P) of
                {ok, State} ->
                    case erts_debug:flat_size(State) > ?MAX_STATE_WORDS of
                        true -> {inconclusive, <<"state_too_large">>};
                        false -> call_in_peer(Peer, M, Mode, Extra, State, Kind, Beams)
                    end;
                {error, _} -> {inconclusive, <<"no_state">>}
            end
    end.

get_state(P) ->
    case beamdeck_agent_otp:call(fun() -> sys:get_state(P, ?STATE_TIMEOUT) end, ?STATE_TIMEOUT + 200) of
        {ok, S} -> {ok, S};
        {error, _} = E -> E
    end.

call_in_peer(Peer, M, _Mode, _Extra, State, supervisor, _Beams) ->
    %% supervisor's state record ends with `module, args' (OTP 25..29).
    Size = tuple_size(State),
    case is_tuple(State) andalso Size > 2 andalso element(Size - 1, State) =:= M of
        true ->
            outcome(fun() -> peer:call(Peer, M, init, [element(Size, State)], ?CALL_TIMEOUT) end,
                    fun(Reply) -> {children, child_ids(Reply)} end);
        false -> {inconclusive, <<"not_a_supervisor_state">>}
    end;
call_in_peer(Peer, M, Mode, Extra, State, Kind, Beams) ->
    OldVsn = case Mode of
                 up -> loaded_vsn(M);
                 down -> {down, target_vsn(maps:get(M, Beams, none))}
             end,
    Args = case {Kind, State} of
               {gen_statem, {StateName, Data}} -> [OldVsn, StateName, Data, Extra];
               _ -> [OldVsn, State, Extra]
           end,
    outcome(fun() -> peer:call(Peer, M, code_change, Args, ?CALL_TIMEOUT) end,
            fun({ok, _}) -> ok;
               ({ok, _, _}) -> ok;
               (Other) -> {crash, error, {bad_return_value, Other}, []}
            end).

%% @doc Run `Call' (a call into the peer): its reply through `OnReply', or
%% the crash, a timeout, or inconclusive for `badarg'/`noproc' (a table or
%% process of the live node the peer does not have).
-spec outcome(Call, OnReply) -> outcome() | {children, term()}
    when Call :: fun(() -> term()), OnReply :: fun((term()) -> outcome() | {children, term()}).
outcome(Call, OnReply) ->
    try Call() of
        Reply -> OnReply(Reply)
    catch
        exit:{timeout, _} -> {crash, exit, timeout, []};
        error:{case_clause, {crash, Why}} -> {crash, exit, Why, []};   % killed in the peer (heap cap)
        error:badarg:Stack -> {inconclusive_crash, error, badarg, Stack};
        exit:noproc:Stack -> {inconclusive_crash, exit, noproc, Stack};
        exit:{noproc, _}:Stack -> {inconclusive_crash, exit, noproc, Stack};
        Class:Reason:Stack -> {crash, Class, Reason, Stack}
    end.

loaded_vsn(M) ->
    case lists:keyfind(vsn, 1, erlang:get_module_info(M, attributes)) of
        {vsn, [V]} -> V;
        {vsn, V} -> V;
        false -> undefined
    end.

target_vsn(none) -> undefined;
target_vsn(Bin) ->
    case beam_lib:version(Bin) of
        {ok, {_, [V]}} -> V;
        {ok, {_, V}} -> V;
        {error, _, _} -> undefined
    end.

%% @doc The child ids of a supervisor's `init/1' reply (`error' if it is
%% not `{ok, {Flags, Specs}}'; `dynamic' for simple_one_for_one).
-spec child_ids(Reply) -> [term()] | dynamic | error when Reply :: term().
child_ids({ok, {#{strategy := simple_one_for_one}, _}}) -> dynamic;
child_ids({ok, {{simple_one_for_one, _, _}, _}}) -> dynamic;
child_ids({ok, {_Flags, Specs}}) when is_list(Specs) ->
    [case S of #{id := Id} -> Id; _ when is_tuple(S) -> element(1, S) end || S <- Specs];
child_ids(_) -> error.

children_finding(_M, _P, dynamic) -> [];
children_finding(M, P, error) ->
    [beamdeck_agent_findings:new(
       code_change_crash, M, <<"init">>, [P],
       beamdeck_agent_terms:fmt("the new ~ts:init/1 does not return {ok, {Flags, ChildSpecs}} on the supervisor's "
           "arguments: release_handler's code_change of the supervisor fails", [M]),
       beamdeck_agent_terms:fmt("fix ~ts:init/1", [M]))];
children_finding(M, P, NewIds) ->
    Live = case beamdeck_agent_otp:which_children(P, ?STATE_TIMEOUT) of
               {ok, Cs} -> [Id || {Id, _, _, _} <- Cs];
               _ -> unknown
           end,
    case Live of
        unknown -> [];
        _ ->
            Added = NewIds -- Live,
            Removed = Live -- NewIds,
            case {Added, Removed} of
                {[], []} -> [];
                _ ->
                    [beamdeck_agent_findings:new(
                       supervisor_children_changed, M, [P],
                       beamdeck_agent_terms:fmt("the new ~ts:init/1 ~ts; release_handler updates the child specs "
                           "but neither starts nor stops children",
                           [M, changes_text(Added, Removed)]),
                       beamdeck_agent_terms:fmt("add ~ts to the appup after the update, or restart the application",
                           [fix_text(M, Added, Removed)]))]
            end
    end.

changes_text(Added, Removed) ->
    lists:join(" and ", [beamdeck_agent_terms:fmt("adds ~ts", [ids(Added)]) || Added =/= []]
                        ++ [beamdeck_agent_terms:fmt("removes ~ts", [ids(Removed)]) || Removed =/= []]).

fix_text(M, Added, Removed) ->
    lists:join(", ", [beamdeck_agent_terms:fmt("{apply, {supervisor, restart_child, [~0tp, ~0tp]}}", [M, Id]) || Id <- Added]
                     ++ [beamdeck_agent_terms:fmt("{apply, {supervisor, terminate_child, [~0tp, ~0tp]}}", [M, Id]) || Id <- Removed]).

ids(L) -> lists:join(", ", [beamdeck_agent_terms:fmt("~0tp", [Id]) || Id <- L]).

%%% GROUPING %%%

%% @doc One finding per module and distinct outcome (class and error atom):
%% 10,000 workers with the same crash are one finding with a count.
-spec group([{module(), pid(), term()}]) -> [beamdeck_agent_findings:finding()].
group(Outcomes) ->
    Visible = beamdeck_agent_detail:values_visible(),
    Keyed = [{key(M, O), M, P, O} || {M, P, O} <- Outcomes, O =/= ok],
    Keys = lists:usort([K || {K, _, _, _} <- Keyed]),
    [begin
         [{_, M, _, O} | _] = Same = [E || {K2, _, _, _} = E <- Keyed, K2 =:= K],
         crash_finding(M, element(2, K), [P || {_, _, P, _} <- Same], O, Visible)
     end || K <- Keys].

key(M, {inconclusive, Why}) -> {M, {inconclusive, Why}};
key(M, {inconclusive_crash, Class, Reason, _}) -> {M, {inconclusive, head(Class, Reason)}};
key(M, {crash, Class, Reason, _}) -> {M, {crash, head(Class, Reason)}}.

head(Class, Reason) when is_atom(Reason) -> beamdeck_agent_terms:fmt("~ts:~ts", [Class, Reason]);
head(Class, Reason) when is_tuple(Reason), tuple_size(Reason) > 0, is_atom(element(1, Reason)) ->
    beamdeck_agent_terms:fmt("~ts:~ts", [Class, element(1, Reason)]);
head(Class, _) -> beamdeck_agent_terms:fmt("~ts:other", [Class]).

crash_finding(M, {crash, Head}, Pids, {crash, _Class, Reason, Stack}, Visible) ->
    beamdeck_agent_findings:new(
      code_change_crash, M, Head, Pids,
      beamdeck_agent_terms:fmt("the new code_change of ~ts crashes on the real state of ~b process(es) (rehearsed in a "
          "peer node): ~ts~ts~ts; after point_of_no_return release_handler then restarts the node "
          "from the old release", [M, length(Pids), Head, reason_text(Reason, Visible), frames(Stack)]),
      beamdeck_agent_terms:fmt("make ~ts:code_change handle this state (the rehearsal shows which clause fails), "
          "then rebuild the release", [M]));
crash_finding(M, {inconclusive, Head}, Pids, O, _Visible) ->
    Why = case O of
              {inconclusive_crash, _, _, Stack} ->
                  beamdeck_agent_terms:fmt("~ts in the peer~ts: the state refers to ETS tables, processes or ports of "
                      "the live node that the peer does not have", [Head, frames(Stack)]);
              {inconclusive, <<"budget">>} -> <<"the rehearsal's time budget was spent">>;
              {inconclusive, <<"state_too_large">>} -> <<"the state is too large to copy">>;
              {inconclusive, <<"no_state">>} -> <<"the process did not return its state in time">>;
              {inconclusive, Other} -> Other
          end,
    inconclusive(M, Head, Pids,
                 beamdeck_agent_terms:fmt("the code_change rehearsal of ~ts could not decide for ~b process(es): ~ts",
                     [M, length(Pids), Why]),
                 <<"review code_change by hand for these processes">>).

inconclusive(M, Detail, Pids, Message, Fix) ->
    beamdeck_agent_findings:new(rehearsal_inconclusive, M, Detail, Pids, Message, Fix).

reason_text(_Reason, false) -> <<>>;
reason_text(Reason, true) ->
    Text = beamdeck_agent_terms:fmt("~0tP", [Reason, 12]),
    [<<" (">>, string:slice(Text, 0, ?REASON_CAP), <<")">>].

frames([]) -> <<>>;
frames(Stack) ->
    [<<" at ">>, lists:join(" < ", [frame(F) || F <- lists:sublist(Stack, ?MAX_FRAMES)])].

frame({M, F, A, Loc}) ->
    Ar = case A of L when is_list(L) -> length(L); N -> N end,
    case lists:keyfind(line, 1, Loc) of
        {line, Line} -> beamdeck_agent_terms:fmt("~ts:~ts/~b (line ~b)", [M, F, Ar, Line]);
        false -> beamdeck_agent_terms:fmt("~ts:~ts/~b", [M, F, Ar])
    end;
frame(_) -> <<"?">>.

now_ms() -> erlang:monotonic_time(millisecond).


-ifdef(TEST).
-include_lib("eunit/include/eunit.hrl").

child_ids_test() ->
    ?assertEqual([a, b], child_ids({ok, {#{}, [#{id => a, start => x}, {b, x, permanent, 5, worker, []}]}})),
    ?assertEqual(dynamic, child_ids({ok, {#{strategy => simple_one_for_one}, [#{id => w}]}})),
    ?assertEqual(error, child_ids(ignore)).

outcome_test() ->
    ?assertEqual(ok, outcome(fun() -> {ok, s} end, fun({ok, _}) -> ok end)),
    ?assertMatch({crash, error, badarith, [_ | _]},
                 outcome(fun() -> 1 + binary_to_term(term_to_binary(a)) end, fun(_) -> ok end)),
    ?assertMatch({inconclusive_crash, error, badarg, _},
                 outcome(fun() -> ets:lookup(no_such_table_here, k) end, fun(_) -> ok end)).

group_counts_identical_crashes_test() ->
    Crash = {crash, error, badarith, [{m, code_change, 3, [{line, 7}]}]},
    [F] = group([{m, list_to_pid("<0.1.0>"), Crash}, {m, list_to_pid("<0.2.0>"), Crash},
                 {m, list_to_pid("<0.3.0>"), ok}]),
    ?assertMatch(#{id := <<"code_change_crash:m:error:badarith">>, count := 2, severity := error}, F),
    ?assertMatch({match, _}, re:run(maps:get(message, F), "m:code_change/3 \\(line 7\\)")).

%% A real peer: this node's own start_clean boot (kernel and stdlib), a
%% code_change that crashes there, and one that the peer cannot decide.
peer_rehearsal_test_() ->
    {timeout, 60,
     fun() ->
             Clean = filename:join([code:root_dir(), "bin", "start_clean.boot"]),
             {ok, Bin} = file:read_file(Clean),
             Tmp = filename:join(beamdeck_agent_check_peer:temp_dir(), "bd-peer-test-" ++ os:getpid()),
             ok = filelib:ensure_dir(filename:join(Tmp, "x")),
             ok = file:write_file(filename:join(Tmp, "b.boot"), beamdeck_agent_check_peer:boot_without_apps(Bin)),
             {ok, Peer} = beamdeck_agent_check_peer:start(["-boot", filename:join(Tmp, "b")], now_ms() + 30000),
             try
                 %% lists:sum on a list holding an atom: badarith, raised in the peer.
                 ?assertMatch({crash, error, badarith, [_ | _]},
                              outcome(fun() -> peer:call(Peer, lists, sum, [[1, foo]], 2000) end,
                                      fun(_) -> ok end)),
                 ?assertEqual(ok, outcome(fun() -> peer:call(Peer, lists, sum, [[1, 2]], 2000) end,
                                          fun(3) -> ok end)),
                 %% A live node's table is unknown in the peer: inconclusive.
                 T = ets:new(bd_live_only, []),
                 ?assertMatch({inconclusive_crash, error, badarg, _},
                              outcome(fun() -> peer:call(Peer, ets, lookup, [T, k], 2000) end,
                                      fun(_) -> ok end))
             after beamdeck_agent_check_peer:stop(Peer), file:del_dir_r(Tmp)
             end
     end}.
-endif.
