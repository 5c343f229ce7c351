-module(beamdeck_agent_upgrade_tests).

-include_lib("eunit/include/eunit.hrl").

%% The command machinery, with the steps replaced by test executors that
%% count their runs: ids, journal, one-at-a-time, replay, inference after
%% a restart. The real steps run against real releases in
%% tests/integration/upgrade-agent.test.ts.

upgrade_test_() ->
    {foreach,
     fun() ->
             Dir = filename:join(["/tmp", "bd_upgrade_tests_" ++ os:getpid(),
                                  integer_to_list(erlang:unique_integer([positive]))]),
             ok = filelib:ensure_dir(filename:join(Dir, "x")),
             Runs = ets:new(runs, [public, bag]),
             {Dir, Runs}
     end,
     fun({Dir, Runs}) ->
             stop(),
             ets:delete(Runs),
             os:cmd("rm -rf " ++ filename:dirname(Dir))
     end,
     [fun(C) -> {"a command runs once, its result is sent and journaled", ?_test(once(C))} end,
      fun(C) -> {"a repeated id is not run again, also after a restart", ?_test(repeated(C))} end,
      fun(C) -> {"one command at a time", ?_test(busy(C))} end,
      fun(C) -> {"results are replayed on connect", ?_test(replay(C))} end,
      fun(C) -> {"a step interrupted by a restart gets an inferred outcome", ?_test(interrupted(C))} end,
      fun(C) -> {"a crashing step is reported", ?_test(crash(C))} end,
      fun(C) -> {"bad params", ?_test(bad_params(C))} end,
      fun(C) -> {"read requests", ?_test(reads(C))} end,
      fun(C) -> {"the facts of reviewed plans are kept for the gate, bounded", ?_test(reviewed(C))} end]}.

start(Dir, Runs, Extra) ->
    Self = self(),
    Opts = maps:merge(#{state_dir => Dir,
                        sink => fun(Frame) -> Self ! {frame, Frame} end,
                        exec => fun(Action, #{id := Id} = Cmd, Ctx) ->
                                        ets:insert(Runs, {Id, Action}),
                                        exec(Action, Cmd, Ctx)
                                end},
                      Extra),
    {ok, Pid} = beamdeck_agent_upgrade:start_link(Opts),
    unlink(Pid),
    Pid.

stop() ->
    [case whereis(Name) of
         undefined -> ok;
         Pid ->
             Ref = erlang:monitor(process, Pid),
             exit(Pid, kill),
             receive {'DOWN', Ref, _, _, _} -> ok end
     end || Name <- [beamdeck_agent_upgrade, beamdeck_agent_upgrade_runner]],
    ok.

%% Test actions: install succeeds (after a progress frame), unpack waits
%% for a go message, rollback fails, make_permanent crashes.
exec(install, #{vsn := V}, #{id := Id, sink := Sink}) ->
    Sink(#{type => progress, commandId => Id, step => <<"install_release">>, message => <<"x">>, at => 0}),
    {ok, #{action => install, vsn => V, modules => [<<"lists">>]}};
exec(unpack, #{vsn := V}, _Ctx) ->
    receive go -> {ok, #{action => unpack, vsn => V}} after 5000 -> {ok, #{timeout => true}} end;
exec(rollback, _, _) ->
    {error, old_processes, <<"blocked">>, #{deaths => #{}}};
exec(make_permanent, _, _) ->
    error(boom).

cmd(Id, Action) -> cmd(Id, Action, #{}).

cmd(Id, Action, Extra) ->
    beamdeck_agent_upgrade:request(<<"upgrade_command">>,
                                   maps:merge(#{<<"commandId">> => Id, <<"action">> => Action,
                                                <<"vsn">> => <<"0.1.1">>}, Extra)).

frame(Type) ->
    receive {frame, #{type := Type} = F} -> F after 3000 -> {no_frame, Type} end.

flush_frames() ->
    receive {frame, _} -> flush_frames() after 50 -> ok end.

runs(Runs, Id) -> [A || {_, A} <- ets:lookup(Runs, Id)].

once({Dir, Runs}) ->
    start(Dir, Runs, #{}),
    ?assertEqual({ok, #{accepted => true, commandId => <<"c-1">>, duplicate => false, status => running}},
                 cmd(<<"c-1">>, <<"install">>, #{<<"purge">> => #{<<"TestListener">> => <<"soft">>}})),
    ?assertMatch(#{commandId := <<"c-1">>, step := <<"install_release">>}, frame(progress)),
    ?assertEqual(#{type => command_result, commandId => <<"c-1">>, ok => true,
                   result => #{action => install, vsn => <<"0.1.1">>, modules => [<<"lists">>]}},
                 frame(command_result)),
    ?assertEqual([install], runs(Runs, <<"c-1">>)),
    {ok, S} = beamdeck_agent_upgrade:status(<<"c-1">>),
    ?assertMatch(#{status := done, ok := true, action := install, vsn := <<"0.1.1">>,
                   error := null, inferred := false}, S),
    ?assert(is_integer(maps:get(finishedAt, S))),
    _ = iolist_to_binary(beamdeck_agent_json:encode(S)),
    %% The journal is on disk, with the params as received.
    {ok, E} = beamdeck_agent_journal:find(<<"c-1">>, beamdeck_agent_journal:open(Dir)),
    ?assertMatch(#{status := done, params := #{<<"purge">> := #{<<"TestListener">> := <<"soft">>}}}, E),
    %% A rollback from 0.1.1 reuses these choices unless told otherwise.
    ?assertEqual(#{<<"0.1.1">> => #{<<"purge">> => #{<<"TestListener">> => <<"soft">>}}},
                 gen_server:call(beamdeck_agent_upgrade, recorded_choices)),
    %% The old_code request watches the modules of the last install.
    {ok, Old} = beamdeck_agent_upgrade:request(<<"old_code">>, #{}),
    ?assertMatch([_ | _], [M || #{module := <<"lists">>} = M <- maps:get(modules, Old)]),
    ?assertMatch({error, not_found, _}, beamdeck_agent_upgrade:status(<<"nope">>)).

repeated({Dir, Runs}) ->
    start(Dir, Runs, #{}),
    {ok, _} = cmd(<<"c-1">>, <<"install">>),
    #{ok := true} = frame(command_result),
    %% Same id: answered from the journal, result sent again, not run again.
    {ok, D} = cmd(<<"c-1">>, <<"install">>),
    ?assertMatch(#{accepted := true, duplicate := true, status := done, ok := true,
                   commandId := <<"c-1">>}, D),
    ?assertMatch(#{commandId := <<"c-1">>, ok := true}, frame(command_result)),
    ?assertEqual([install], runs(Runs, <<"c-1">>)),
    %% Across a restart of the agent (same journal directory).
    stop(),
    start(Dir, Runs, #{}),
    {ok, D2} = cmd(<<"c-1">>, <<"install">>),
    ?assertMatch(#{duplicate := true, status := done, ok := true}, D2),
    ?assertMatch(#{commandId := <<"c-1">>, ok := true}, frame(command_result)),
    ?assertEqual([install], runs(Runs, <<"c-1">>)),
    %% A failed command is recorded as failed, and stays failed.
    {ok, _} = cmd(<<"c-2">>, <<"rollback">>),
    ?assertMatch(#{commandId := <<"c-2">>, ok := false,
                   error := #{code := old_processes, message := <<"blocked">>},
                   result := #{deaths := #{}}}, frame(command_result)),
    {ok, D3} = cmd(<<"c-2">>, <<"rollback">>),
    ?assertMatch(#{duplicate := true, ok := false, error := #{code := old_processes}}, D3),
    ?assertEqual([rollback], runs(Runs, <<"c-2">>)).

busy({Dir, Runs}) ->
    start(Dir, Runs, #{}),
    {ok, #{duplicate := false}} = cmd(<<"c-1">>, <<"unpack">>),
    %% The runner registers itself once it runs: `go' below needs its name.
    beamdeck_test_util:wait_until(fun() -> is_pid(whereis(beamdeck_agent_upgrade_runner)) end),
    {error, busy, Msg} = cmd(<<"c-2">>, <<"install">>),
    ?assertMatch({_, _}, binary:match(Msg, <<"c-1 (unpack 0.1.1) is running">>)),
    ?assertEqual([], runs(Runs, <<"c-2">>)),
    %% The running id itself is a duplicate, not busy.
    ?assertMatch({ok, #{duplicate := true, status := running}}, cmd(<<"c-1">>, <<"unpack">>)),
    beamdeck_agent_upgrade_runner ! go,
    ?assertMatch(#{commandId := <<"c-1">>, ok := true}, frame(command_result)),
    {ok, #{duplicate := false}} = cmd(<<"c-2">>, <<"install">>),
    ?assertMatch(#{commandId := <<"c-2">>, ok := true}, frame(command_result)).

replay({Dir, Runs}) ->
    start(Dir, Runs, #{}),
    [begin {ok, _} = cmd(Id, <<"install">>), #{ok := true} = frame(command_result) end
     || Id <- [<<"a">>, <<"b">>, <<"c">>]],
    flush_frames(),
    ok = beamdeck_agent_upgrade:connected(),
    Ids = [receive {frame, #{type := command_result, commandId := Id}} -> Id after 1000 -> none end
           || _ <- [1, 2, 3]],
    ?assertEqual([<<"a">>, <<"b">>, <<"c">>], Ids),
    ?assertEqual([install], runs(Runs, <<"a">>)).

interrupted({Dir, Runs}) ->
    %% The journal as a node restart leaves it: a step still "running".
    J = beamdeck_agent_journal:open(Dir),
    {ok, _} = beamdeck_agent_journal:put(#{id => <<"c-9">>, action => install, vsn => <<"0.1.1">>,
                                           params => #{}, status => running,
                                           step => <<"install_release">>, startedAt => 1,
                                           finishedAt => null, ok => null, result => null,
                                           error => null, inferred => false, bootId => <<"old">>,
                                           node => <<"n@h">>}, J),
    Self = self(),
    start(Dir, Runs, #{infer => fun(E) ->
                                        Self ! {inferring, maps:get(step, E)},
                                        {error, interrupted, <<"did not complete">>,
                                         #{inferred => true, status => unpacked}}
                                end}),
    ?assertEqual({inferring, <<"install_release">>}, receive {inferring, _} = I -> I after 3000 -> none end),
    ?assertMatch(#{commandId := <<"c-9">>, ok := false, error := #{code := interrupted},
                   result := #{inferred := true}}, frame(command_result)),
    {ok, S} = beamdeck_agent_upgrade:status(<<"c-9">>),
    ?assertMatch(#{status := done, ok := false, inferred := true}, S),
    ?assertEqual([], runs(Runs, <<"c-9">>)),
    %% The real inference: release_handler is not running here, so no
    %% release is known and the install did not complete.
    ?assertMatch({error, interrupted, _, #{inferred := true, interruptedStep := <<"install_release">>}},
                 infer_default()).

infer_default() ->
    %% infer/1 is the default `infer' option; run it through a server.
    Dir = filename:join(["/tmp", "bd_upgrade_tests_" ++ os:getpid(), "infer"]),
    J = beamdeck_agent_journal:open(Dir),
    {ok, _} = beamdeck_agent_journal:put(#{id => <<"i-1">>, action => install, vsn => <<"0.1.1">>,
                                           params => #{}, status => running,
                                           step => <<"install_release">>, startedAt => 1,
                                           finishedAt => null, ok => null, result => null,
                                           error => null, inferred => false, bootId => <<"old">>,
                                           node => <<"n@h">>}, J),
    stop(),
    Self = self(),
    {ok, Pid} = beamdeck_agent_upgrade:start_link(#{state_dir => Dir,
                                                    sink => fun(F) -> Self ! {frame, F} end}),
    unlink(Pid),
    #{error := #{code := Code, message := Msg}, result := Result} = frame(command_result),
    {error, Code, Msg, Result}.

crash({Dir, Runs}) ->
    start(Dir, Runs, #{}),
    {ok, _} = cmd(<<"c-1">>, <<"make_permanent">>),
    #{ok := false, error := #{code := internal, message := Msg}} = frame(command_result),
    ?assertMatch({_, _}, binary:match(Msg, <<"boom">>)),
    %% The server is free again.
    {ok, #{duplicate := false}} = cmd(<<"c-2">>, <<"install">>).

bad_params({Dir, Runs}) ->
    start(Dir, Runs, #{}),
    R = fun(P) -> beamdeck_agent_upgrade:request(<<"upgrade_command">>, P) end,
    ?assertMatch({error, bad_request, _}, R(#{<<"action">> => <<"install">>, <<"vsn">> => <<"1">>})),
    ?assertMatch({error, bad_request, _}, R(#{<<"commandId">> => <<>>, <<"action">> => <<"install">>,
                                              <<"vsn">> => <<"1">>})),
    ?assertMatch({error, bad_request, _}, R(#{<<"commandId">> => <<"x">>, <<"action">> => <<"reboot">>,
                                              <<"vsn">> => <<"1">>})),
    ?assertMatch({error, bad_request, _}, R(#{<<"commandId">> => <<"x">>, <<"action">> => <<"install">>})),
    ?assertMatch({error, bad_request, _}, R(#{<<"commandId">> => <<"x">>, <<"action">> => <<"install">>,
                                              <<"vsn">> => <<"1">>, <<"purge">> => <<"soft">>})),
    %% a malformed gate is refused before anything runs
    ?assertMatch({error, bad_request, <<"params.gate", _/binary>>},
                 R(#{<<"commandId">> => <<"x">>, <<"action">> => <<"install">>, <<"vsn">> => <<"1">>,
                     <<"gate">> => #{<<"maxKills">> => -1}})),
    %% fallbackMs: install only, 1 s to 24 h
    ?assertMatch({error, bad_request, <<"params.fallbackMs is for install only">>},
                 R(#{<<"commandId">> => <<"x">>, <<"action">> => <<"rollback">>, <<"fallbackMs">> => 5000})),
    [?assertMatch({error, bad_request, <<"params.fallbackMs must be", _/binary>>},
                  R(#{<<"commandId">> => <<"x">>, <<"action">> => <<"install">>, <<"vsn">> => <<"1">>,
                      <<"fallbackMs">> => Bad})) || Bad <- [999, 86400001, <<"20m">>, 1.5e3]],
    %% rollback needs no vsn
    ?assertMatch({ok, #{accepted := true}}, R(#{<<"commandId">> => <<"r">>, <<"action">> => <<"rollback">>})),
    ?assertMatch({error, unknown_method, _}, beamdeck_agent_upgrade:request(<<"reboot">>, #{})),
    ?assertEqual([], runs(Runs, <<"x">>)).

reads({Dir, Runs}) ->
    start(Dir, Runs, #{}),
    {ok, Rel} = beamdeck_agent_upgrade:request(<<"releases">>, #{}),
    ?assertMatch(#{handler := false}, Rel),
    _ = iolist_to_binary(beamdeck_agent_json:encode(Rel)),
    ?assertMatch({error, bad_request, _}, beamdeck_agent_upgrade:request(<<"upgrade_plan">>, #{})),
    {ok, Old} = beamdeck_agent_upgrade:request(<<"old_code">>, #{}),
    ?assertMatch(#{modules := _, total := _, at := _}, Old),
    _ = iolist_to_binary(beamdeck_agent_json:encode(Old)),
    stop(),
    ?assertMatch({error, unavailable, _}, cmd(<<"z">>, <<"install">>)).

reviewed({Dir, Runs}) ->
    start(Dir, Runs, #{}),
    Facts = fun(N) ->
                    #{node => <<"n@h">>, boot_id => <<"b">>, step => install, choices => [],
                      killed => #{install => [integer_to_binary(I) || I <- lists:seq(1, N)],
                                  make_permanent => []},
                      blocked => [], error_ids => []}
            end,
    Cast = fun(D, F) -> gen_server:cast(beamdeck_agent_upgrade, {reviewed, D, F}) end,
    Get = fun(D) -> gen_server:call(beamdeck_agent_upgrade, {reviewed, D}) end,
    Small = Facts(10),
    Cast(<<"small">>, Small),
    Cast(<<"big">>, Facts(50001)),
    [Cast(integer_to_binary(I), Small) || I <- lists:seq(1, 7)],
    ?assertEqual(Small, Get(<<"small">>)),
    %% More kills than the cache keeps: accepted by the exact digest only.
    ?assertEqual(none, Get(<<"big">>)),
    %% The ninth plan pushes the oldest out.
    Cast(<<"ninth">>, Small),
    ?assertEqual(none, Get(<<"small">>)),
    ?assertEqual(Small, Get(<<"ninth">>)).
