-module(beamdeck_agent_detail_tests).

-include_lib("eunit/include/eunit.hrl").

-export([init/1, handle_call/3, handle_cast/2]).

%% Two modules made in memory: an Elixir-named one with a chain of ten
%% distinct non-tail calls (a stacktrace folds repeated frames), and an
%% outer one whose frame sits below the 8 frames of a stacktrace.
listener_source() ->
    "-module('Elixir.TestListener').\n-export([d1/0]).\n"
    ++ lists:append([io_lib:format("d~b() -> 1 + d~b().~n", [I, I + 1]) || I <- lists:seq(1, 9)])
    ++ "d10() -> receive stop -> 0 end.\n".
-define(OUTER, "
-module(bd_detail_outer).
-export([run/1]).
run(F) -> R = F(), {done, R}.
").

load(Source) ->
    {ok, Tokens, _} = erl_scan:string(Source),
    {ok, Mod, Bin} = compile:forms(forms(Tokens, [], []), []),
    {module, Mod} = code:load_binary(Mod, atom_to_list(Mod) ++ ".erl", Bin),
    Mod.

forms([], [], Acc) -> lists:reverse(Acc);
forms([{dot, _} = Dot | Rest], Cur, Acc) ->
    {ok, Form} = erl_parse:parse_form(lists:reverse([Dot | Cur])),
    forms(Rest, [], [Form | Acc]);
forms([T | Rest], Cur, Acc) -> forms(Rest, [T | Cur], Acc).

unload(Mod) ->
    _ = code:purge(Mod),
    _ = code:delete(Mod),
    _ = code:purge(Mod),
    ok.

pid(P) -> list_to_binary(pid_to_list(P)).

stop(P) ->
    Ref = monitor(process, P),
    exit(P, kill),
    receive {'DOWN', Ref, process, P, _} -> ok end.

wait_waiting(P) ->
    case process_info(P, status) of
        {status, waiting} -> ok;
        _ -> timer:sleep(5), wait_waiting(P)
    end.

%% gen_server callbacks for the state tests.
init(State) -> {ok, State}.
handle_call(_, _, S) -> {reply, ok, S}.
handle_cast(block, S) -> receive unblock -> {noreply, S} end;
handle_cast(_, S) -> {noreply, S}.

%%% Tests %%%

bad_and_missing_pids_test() ->
    ?assertMatch({error, bad_pid, _}, beamdeck_agent_detail:fetch(<<"nonsense">>)),
    ?assertMatch({error, bad_pid, _}, beamdeck_agent_detail:fetch(<<"<0.1.2">>)),
    ?assertMatch({error, bad_pid, _}, beamdeck_agent_detail:fetch(not_a_binary)),
    P = spawn(fun() -> ok end),
    stop(P),
    {error, not_found, Msg} = beamdeck_agent_detail:fetch(pid(P)),
    ?assertEqual(<<"no such process ", (pid(P))/binary>>, Msg).

%% Issue 14 item 6: a pid number no process of this node can have is "no
%% such process", like a dead pid; malformed text names what is expected.
pid_errors_read_test() ->
    ?assertEqual({error, not_found, <<"no such process <0.99999.0>">>},
                 beamdeck_agent_detail:fetch(<<"<0.99999.0>">>)),
    {error, bad_pid, Malformed} = beamdeck_agent_detail:fetch(<<"abc">>),
    ?assertEqual(<<"not a pid: \"abc\"; expected a pid like <0.116.0>">>, Malformed),
    {error, bad_pid, Remote} = beamdeck_agent_detail:fetch(<<"<5.1.0>">>),
    ?assertMatch({match, _}, re:run(Remote, "not a pid of this node")),
    ?assertEqual(nomatch, binary:match(Malformed, <<"<<">>)).

detail_of_deep_process_test_() ->
    {setup,
     fun() -> [load(listener_source()), load(?OUTER)] end,
     fun(Mods) -> [unload(M) || M <- Mods] end,
     fun(_) -> [fun deep_process/0] end}.

deep_process() ->
    P = spawn(fun() -> bd_detail_outer:run(fun() -> 'Elixir.TestListener':d1() end) end),
    wait_waiting(P),
    P ! {secret, <<"bd-marker-7d1f">>},
    {ok, D} = beamdeck_agent_detail:fetch(pid(P)),
    ?assertEqual(pid(P), maps:get(pid, D)),
    ?assertEqual(true, maps:get(alive, D)),
    %% stacktrace: at most 8 frames, all in the recursion.
    Stack = maps:get(stacktrace, D),
    ?assertEqual(8, length(Stack)),
    ?assertMatch([#{mfa := <<"Elixir.TestListener:d10/0">>, line := 12,
                    file := <<"Elixir.TestListener.erl">>} | _], Stack),
    ?assertEqual([], [F || #{mfa := <<"bd_detail_outer:", _/binary>>} = F <- Stack]),
    %% stackModules: from the full backtrace, so the outer frame is there.
    Mods = maps:get(stackModules, D),
    ?assertEqual(<<"Elixir.TestListener">>, hd(Mods)),
    ?assert(lists:member(<<"bd_detail_outer">>, Mods)),
    %% The mailbox is counted, never read.
    ?assertEqual(1, maps:get(messageQueueLen, D)),
    ?assertEqual(1, maps:get(mailbox, maps:get(record, D))),
    Json = iolist_to_binary(beamdeck_agent_json:encode(D)),
    ?assertEqual(nomatch, binary:match(Json, <<"bd-marker-7d1f">>)),
    ?assertEqual(<<"erlang:apply/2">>, maps:get(initialCall, maps:get(record, D))),
    stop(P).

stack_modules_parsing_test() ->
    Bt = <<"Program counter: 0x00007f0a (Elixir.TestListener:loop/1 + 120)\n"
           "y(0)     []\n\n"
           "0x00007f01 Return addr 0x00007f02 ('Elixir.Foo.Bar':run/2 + 40)\n"
           "0x00007f03 Catch 0x00007f04 (gen_server:try_dispatch/4 + 100)\n"
           "0x00007f05 Return addr 0x00007f06 ('Elixir.TestListener':'-start/1-fun-0-'/0 + 8)\n"
           "0x00007f07 Return addr 0x00007f08 ('we\\'ird':x/0 + 8)\n"
           "0x00007f09 Return addr 0x00007f10 (<terminate process normally>)\n">>,
    ?assertEqual([<<"Elixir.TestListener">>, <<"Elixir.Foo.Bar">>, <<"gen_server">>,
                  <<"we'ird">>],
                 beamdeck_agent_detail:stack_modules(Bt)),
    ?assertEqual([], beamdeck_agent_detail:stack_modules(<<"nothing here">>)).

links_monitors_and_flags_test() ->
    Self = self(),
    Other = spawn(fun() -> receive stop -> ok end end),
    P = spawn(fun() ->
                      process_flag(trap_exit, true),
                      link(Self),
                      _ = monitor(process, Other),
                      Self ! ready,
                      receive stop -> ok end
              end),
    receive ready -> ok end,
    Watcher = monitor(process, P),
    {ok, D} = beamdeck_agent_detail:fetch(pid(P)),
    ?assertEqual([pid(Self)], maps:get(links, D)),
    ?assertEqual([#{kind => <<"process">>, pid => pid(Other)}], maps:get(monitors, D)),
    ?assertEqual([pid(Self)], maps:get(monitoredBy, D)),
    ?assertEqual(true, maps:get(trapExit, D)),
    ?assertEqual(<<"normal">>, maps:get(priority, D)),
    [?assert(is_integer(maps:get(K, D))) || K <- [heapSize, stackSize, totalHeapSize]],
    #{minorGcs := Minor, fullsweepAfter := Full} = maps:get(garbageCollection, D),
    ?assert(is_integer(Minor) andalso is_integer(Full)),
    demonitor(Watcher, [flush]),
    unlink(P),
    stop(P),
    stop(Other).

dictionary_is_capped_test() ->
    beamdeck_test_util:with_env(get_state, true, fun dictionary_is_capped/0).

dictionary_values_hidden_by_default_test() ->
    beamdeck_test_util:with_env(get_state, false, fun() ->
        Self = self(),
        P = proc_lib:spawn(fun() ->
                                   put(api_key, <<"sk-very-secret">>),
                                   Self ! ready,
                                   receive stop -> ok end
                           end),
        receive ready -> ok end,
        {ok, D} = beamdeck_agent_detail:fetch(pid(P)),
        Dict = maps:get(dictionary, D),
        ?assertEqual(<<"hidden">>, maps:get(dictionaryValues, D)),
        ?assertMatch([_ | _], [E || #{key := <<"api_key">>, value := null} = E <- Dict]),
        %% proc_lib's own bookkeeping still shows.
        ?assertMatch([#{value := <<"[", _/binary>>}], [E || #{key := <<"'$ancestors'">>} = E <- Dict]),
        ?assertEqual(nomatch, binary:match(iolist_to_binary(io_lib:format("~p", [D])), <<"sk-very-secret">>)),
        beamdeck_test_util:with_env(get_state, true, fun() ->
            {ok, D2} = beamdeck_agent_detail:fetch(pid(P)),
            ?assertMatch([#{value := <<"<<\"sk-very-secret\">>">>}], [E || #{key := <<"api_key">>} = E <- maps:get(dictionary, D2)])
        end),
        stop(P)
    end).

dictionary_is_capped() ->
    Self = self(),
    P = spawn(fun() ->
                      [put({key, I}, I) || I <- lists:seq(1, 80)],
                      put(huge, binary:copy(<<"x">>, 100000)),
                      Self ! ready,
                      receive stop -> ok end
              end),
    receive ready -> ok end,
    {ok, D} = beamdeck_agent_detail:fetch(pid(P)),
    Dict = maps:get(dictionary, D),
    ?assertEqual(50, length(Dict)),
    ?assertEqual(true, maps:get(dictionaryTruncated, D)),
    [?assert(byte_size(V) =< 1024) || #{value := V} <- Dict],
    %% Sorted by key (atoms before tuples), the huge value cut short.
    ?assertMatch([#{key := <<"huge">>}, #{key := <<"{key,1}">>} | _], Dict),
    stop(P).

state_disabled_by_default_test() ->
    beamdeck_test_util:with_env(get_state, false, fun() ->
        {ok, Gs} = gen_server:start(?MODULE, {secret_state, 42}, []),
        {ok, D} = beamdeck_agent_detail:fetch(pid(Gs)),
        ?assertEqual(#{error => <<"disabled">>}, maps:get(state, D)),
        gen_server:stop(Gs)
    end).

state_when_enabled_test_() ->
    {timeout, 20, fun() ->
        beamdeck_test_util:with_env(get_state, true, fun() ->
            {ok, Gs} = gen_server:start(?MODULE, {secret_state, 42}, []),
            {ok, D} = beamdeck_agent_detail:fetch(pid(Gs)),
            ?assertEqual(#{text => <<"{secret_state,42}">>, truncated => false}, maps:get(state, D)),
            %% Not a proc_lib process: no sys call at all.
            Plain = spawn(fun() -> receive stop -> ok end end),
            {ok, D2} = beamdeck_agent_detail:fetch(pid(Plain)),
            ?assertEqual(#{error => <<"not_otp">>}, maps:get(state, D2)),
            %% Busy in a callback, it cannot answer: timeout, in about 1 s.
            gen_server:cast(Gs, block),
            T0 = erlang:monotonic_time(millisecond),
            {ok, D3} = beamdeck_agent_detail:fetch(pid(Gs)),
            ?assert(erlang:monotonic_time(millisecond) - T0 < 3000),
            ?assertEqual(#{error => <<"timeout">>}, maps:get(state, D3)),
            Gs ! unblock,
            gen_server:stop(Gs),
            stop(Plain)
        end)
    end}.
