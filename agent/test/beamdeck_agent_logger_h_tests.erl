%%% Tests for beamdeck_agent_logger_h: the event maps built from OTP's own
%%% supervisor and crash reports (produced for real here, with the handler
%%% installed in this VM's logger and this test process as the sink), and
%%% from synthetic reports for shapes OTP 25 does not emit (map offenders).
-module(beamdeck_agent_logger_h_tests).

-include_lib("eunit/include/eunit.hrl").

-export([init/1, start_ok/0, start_error/0, start_stubborn/0]).

-define(H, bd_logger_h_test).
-define(MSG, '$beamdeck_agent_event').

%%% REAL OTP REPORTS %%%

real_reports_test_() ->
    [{"child_terminated then shutdown: reached_max_restart_intensity", with_handler(fun max_intensity/0)},
     {"start_error", with_handler(fun start_error_report/0)},
     {"shutdown_error", with_handler(fun shutdown_error_report/0)},
     {"proc_lib crash report (get_state on)", with_handler(fun() -> beamdeck_test_util:with_env(get_state, true, fun crash_report/0) end)},
     {"proc_lib crash report without values (get_state off)", with_handler(fun() -> beamdeck_test_util:with_env(get_state, false, fun crash_report_redacted/0) end)},
     {"plain logger errors and normal exits are ignored", with_handler(fun ignored/0)}].

%% Install the handler with the test process itself as the sink (setup and
%% test of a fixture may run in different processes, so no fixture here).
with_handler(Test) ->
    fun() ->
        Muted = case logger:get_handler_config(default) of
                    {ok, #{level := L}} -> ok = logger:set_handler_config(default, level, none), L;
                    _ -> undefined
                end,
        Sink = {self(), atomics:new(3, [{signed, true}]), 1000},
        ok = logger:add_handler(?H, beamdeck_agent_logger_h, beamdeck_agent_logger_h:handler_config(Sink, false)),
        try
            Test()
        after
            ok = logger:remove_handler(?H),
            _ = [logger:set_handler_config(default, level, Muted) || Muted =/= undefined],
            flush()
        end
    end.

max_intensity() ->
    Trap = process_flag(trap_exit, true),
    {ok, Sup} = supervisor:start_link({local, bd_logger_h_sup}, ?MODULE, {intensity0, start_ok}),
    [{w, Child, worker, _}] = supervisor:which_children(Sup),
    exit(Child, boom),
    receive {'EXIT', Sup, _} -> ok after 5000 -> error(sup_alive) end,
    [Term, Shutdown] = events(2),
    ?assertMatch(#{kind := <<"supervisor_report">>, context := <<"child_terminated">>,
                   supervisor := <<"bd_logger_h_sup">>,
                   reason := #{text := <<"boom">>, atom := <<"boom">>}}, Term),
    ?assertEqual(list_to_binary(pid_to_list(Child)), maps:get(pid, maps:get(offender, Term))),
    ?assertMatch(#{kind := <<"supervisor_report">>, context := <<"shutdown">>,
                   supervisor := <<"bd_logger_h_sup">>,
                   reason := #{text := <<"reached_max_restart_intensity">>,
                               atom := <<"reached_max_restart_intensity">>},
                   offender := #{id := <<"w">>, restartType := <<"permanent">>,
                                 shutdown := <<"brutal_kill">>, childType := <<"worker">>,
                                 mfa := <<"beamdeck_agent_logger_h_tests:start_ok/0">>}},
                 Shutdown),
    ?assertEqual([], events(0)),
    process_flag(trap_exit, Trap).

start_error_report() ->
    Trap = process_flag(trap_exit, true),
    ?assertMatch({error, _}, supervisor:start_link(?MODULE, {intensity0, start_error})),
    %% On OTP 25 the failed supervisor's exit signal follows the reply.
    receive {'EXIT', _, {shutdown, {failed_to_start_child, w, nope}}} -> ok after 2000 -> ok end,
    process_flag(trap_exit, Trap),
    [E] = events(1),
    ?assertMatch(#{context := <<"start_error">>, reason := #{text := <<"nope">>, atom := <<"nope">>},
                   offender := #{id := <<"w">>, pid := null,
                                 mfa := <<"beamdeck_agent_logger_h_tests:start_error/0">>}}, E),
    %% An unnamed supervisor is `{Pid, Module}` in OTP's report.
    ?assertMatch(<<"<", _/binary>>, maps:get(supervisor, E)),
    ?assertEqual(<<"beamdeck_agent_logger_h_tests">>, maps:get(supervisorModule, E)).

shutdown_error_report() ->
    {ok, Sup} = supervisor:start_link(?MODULE, {intensity0, start_stubborn}),
    unlink(Sup),
    ok = supervisor:terminate_child(Sup, w),
    [E] = events(1),
    ?assertMatch(#{context := <<"shutdown_error">>,
                   reason := #{text := <<"{not_shutdown,shutdown}">>, truncated := false}}, E),
    ?assertNot(maps:is_key(atom, maps:get(reason, E))),
    gen_server:stop(Sup).

crash_report() ->
    Pid = proc_lib:spawn(fun() -> register(bd_crasher, self()), exit({crashed, lists:seq(1, 3)}) end),
    [E] = events(1),
    ?assertMatch(#{kind := <<"crash_report">>, context := <<"crash">>, name := <<"bd_crasher">>,
                   class := <<"exit">>,
                   reason := #{text := <<"{crashed,[1,2,3]}">>, truncated := false}}, E),
    ?assertEqual(list_to_binary(pid_to_list(Pid)), maps:get(pid, E)),
    ?assertMatch(<<"beamdeck_agent_logger_h_tests:-crash_report/0-fun-", _/binary>>, maps:get(initialCall, E)),
    #{text := Text} = maps:get(report, E),
    ?assertMatch({_, _}, binary:match(Text, <<"crasher:">>)),
    ?assertNot(maps:is_key(atom, maps:get(reason, E))),
    %% Frames go with get_state on too: the server shows them to viewers below the values role.
    ?assert(is_list(maps:get(frames, E))).

crash_report_redacted() ->
    Pid = proc_lib:spawn(fun() ->
                                 register(bd_crasher2, self()),
                                 put(db_password, "hunter2-secret"),
                                 self() ! {queued, "queued-secret"},
                                 secret_arg_fun("arg-secret")
                         end),
    [E] = events(1),
    ?assertMatch(#{kind := <<"crash_report">>, class := <<"error">>, name := <<"bd_crasher2">>,
                   reason := #{text := <<"{badmatch,...}">>}}, E),
    ?assertEqual(list_to_binary(pid_to_list(Pid)), maps:get(pid, E)),
    #{text := Text} = maps:get(report, E),
    Printed = iolist_to_binary(io_lib:format("~p", [E])),
    [?assertEqual(nomatch, binary:match(Printed, Secret), Secret)
     || Secret <- [<<"hunter2">>, <<"queued-secret">>, <<"arg-secret">>]],
    ?assertMatch({_, _}, binary:match(Text, <<"dictionary keys: ">>)),
    ?assertMatch({_, _}, binary:match(Text, <<"db_password">>)),
    ?assertMatch({_, _}, binary:match(Text, <<"beamdeck_agent_logger_h_tests:secret_arg_fun/1">>)),
    ?assertMatch({_, _}, binary:match(Text, <<"message_queue_len: 1">>)),
    %% The frames (capability crash_frames): code locations, no arguments.
    [First | _] = maps:get(frames, E),
    ?assertMatch(<<"beamdeck_agent_logger_h_tests:secret_arg_fun/1 (", _/binary>>, First).

secret_arg_fun(Arg) ->
    %% A badmatch whose value (and the frame's argument) holds the secret.
    {ok, _} = erlang:list_to_tuple([error, Arg]),
    ok.

ignored() ->
    logger:error("plain error ~p", [1]),
    logger:error(#{some => report}),
    proc_lib:spawn(fun() -> exit(normal) end),
    proc_lib:spawn(fun() -> exit(shutdown) end),
    %% A progress report with progress off (level and log/2 both drop it).
    logger:info(#{label => {supervisor, progress}, report => [{supervisor, {local, x}}, {started, []}]},
                #{domain => [otp, sasl]}),
    ?assertEqual([], events(0)).

%%% SYNTHETIC EVENTS %%%

sup_event(Sup, Offender, Reason) ->
    #{level => error,
      msg => {report, #{label => {supervisor, child_terminated},
                        report => [{supervisor, Sup}, {errorContext, child_terminated},
                                   {reason, Reason}, {offender, Offender}]}},
      meta => #{time => 1764000000123456, domain => [otp, sasl],
                report_cb => fun supervisor:format_log/2}}.

offender_list() ->
    [{pid, list_to_pid("<0.116.0>")}, {id, {my, child}}, {mfargs, {m, f, [a, b]}},
     {restart_type, transient}, {significant, false}, {shutdown, infinity},
     {child_type, supervisor}].

at_and_fields_test() ->
    E = beamdeck_agent_logger_h:event(sup_event({local, 'Elixir.RelTest.Supervisor'}, offender_list(), killed), 8192),
    ?assertMatch(#{kind := <<"supervisor_report">>, context := <<"child_terminated">>,
                   at := 1764000000123, supervisor := <<"Elixir.RelTest.Supervisor">>,
                   reason := #{text := <<"killed">>, atom := <<"killed">>, truncated := false},
                   offender := #{id := <<"{my,child}">>, pid := <<"<0.116.0>">>,
                                 mfargs := #{text := <<"{m,f,[a,b]}">>}, mfa := <<"m:f/2">>,
                                 restartType := <<"transient">>, shutdown := <<"infinity">>,
                                 childType := <<"supervisor">>},
                   report := #{truncated := false}}, E),
    ?assertNot(maps:is_key(supervisorModule, E)).

map_offender_test() ->
    FromList = beamdeck_agent_logger_h:event(sup_event({local, s}, offender_list(), killed), 8192),
    FromMap = beamdeck_agent_logger_h:event(sup_event({local, s}, maps:from_list(offender_list()), killed), 8192),
    ?assertEqual(maps:get(offender, FromList), maps:get(offender, FromMap)).

nb_children_test() ->
    Off = [{nb_children, 3}, {id, workers}, {mfargs, {m, start_link, []}},
           {restart_type, temporary}, {significant, false}, {shutdown, 5000}, {child_type, worker}],
    E = beamdeck_agent_logger_h:event(sup_event({local, s}, Off, shutdown), 8192),
    ?assertMatch(#{offender := #{pid := null, nbChildren := 3, id := <<"workers">>,
                                 shutdown := <<"5000">>}}, E).

supervisor_names_test() ->
    Pid = list_to_pid("<0.200.0>"),
    Sup = fun(Name) -> maps:get(supervisor, beamdeck_agent_logger_h:event(sup_event(Name, offender_list(), x), 8192)) end,
    ?assertEqual(<<"my_sup">>, Sup({global, my_sup})),
    ?assertEqual(<<"{a,1}">>, Sup({via, registry, {a, 1}})),
    ?assertEqual(<<"<0.200.0>">>, Sup({Pid, my_mod})),
    ?assertEqual(<<"<0.200.0>">>, Sup(Pid)).

caps_test() ->
    Big = lists:duplicate(20000, $é),
    E = beamdeck_agent_logger_h:event(sup_event({local, s}, offender_list(), {error, Big}), 8192),
    #{reason := #{text := RText, truncated := true}, report := #{text := Text, truncated := true}} = E,
    ?assert(byte_size(RText) =< 2048),
    ?assert(byte_size(Text) =< 8192),
    ?assert(byte_size(Text) > 8000),
    %% Cut on a character boundary: still valid UTF-8.
    ?assert(is_binary(unicode:characters_to_binary(Text))),
    ?assert(erlang:external_size(E) < 16 * 1024).

odd_offender_test() ->
    E = beamdeck_agent_logger_h:event(sup_event({local, s}, not_a_child, killed), 8192),
    ?assertEqual(null, maps:get(offender, E)).

%%% HANDLER CALLBACKS %%%

log_never_raises_test() ->
    Ref = atomics:new(3, [{signed, true}]),
    Config = #{config => #{sink => {self(), Ref, 10}, progress => false}},
    %% No `meta`: building the event fails; counted, not raised.
    Broken = #{level => error, msg => {report, #{label => {supervisor, child_terminated}, report => []}}},
    ?assertEqual(ok, beamdeck_agent_logger_h:log(Broken, Config)),
    ?assertEqual(1, atomics:get(Ref, 3)),
    ?assertEqual(0, atomics:get(Ref, 1)),
    ?assertEqual(ok, beamdeck_agent_logger_h:log(#{level => error, msg => {string, "x"}, meta => #{}}, Config)),
    ?assertEqual(ok, beamdeck_agent_logger_h:log(garbage, Config)),
    ?assertEqual(ok, beamdeck_agent_logger_h:log(garbage, #{})),
    ?assertEqual(1, atomics:get(Ref, 3)),
    ?assertEqual([], events(0)).

overload_drop_test() ->
    Ref = atomics:new(3, [{signed, true}]),
    Config = #{config => #{sink => {self(), Ref, 2}, progress => false}},
    [ok = beamdeck_agent_logger_h:log(sup_event({local, s}, offender_list(), killed), Config) || _ <- lists:seq(1, 5)],
    ?assertEqual(2, length(events(0))),
    ?assertEqual(3, atomics:get(Ref, 2)),
    ?assertEqual(2, atomics:get(Ref, 1)).

config_test() ->
    Sink = {self(), atomics:new(3, []), 10},
    C = beamdeck_agent_logger_h:handler_config(Sink, false),
    ?assertMatch(#{level := error, filters := [], filter_default := log}, C),
    ?assertMatch(#{level := info}, beamdeck_agent_logger_h:handler_config(Sink, true)),
    ?assertEqual({error, no_sink}, beamdeck_agent_logger_h:adding_handler(#{id => x})),
    ?assertEqual({ok, C}, beamdeck_agent_logger_h:adding_handler(C)),
    %% Someone updating every handler's level must not lose the sink.
    {ok, C2} = beamdeck_agent_logger_h:changing_config(update, C, #{level => notice, config => #{}}),
    ?assertMatch(#{level := notice, config := #{sink := Sink}}, C2).

%%% SUPERVISOR CALLBACKS %%%

init({intensity0, Start}) ->
    {ok, {#{strategy => one_for_one, intensity => 0, period => 5},
          [#{id => w, start => {?MODULE, Start, []}, restart => permanent,
             shutdown => case Start of start_stubborn -> 1000; _ -> brutal_kill end,
             type => worker}]}}.

start_ok() -> {ok, spawn_link(fun() -> receive stop -> ok end end)}.

start_error() -> {error, nope}.

%% Traps exits and leaves with another reason when told to shut down.
start_stubborn() ->
    {ok, spawn_link(fun() ->
                        process_flag(trap_exit, true),
                        receive {'EXIT', _, shutdown} -> exit({not_shutdown, shutdown}) end
                    end)}.

%%% HELPERS %%%

%% Exactly N events within a short wait, and nothing more just after.
events(N) -> events(N, []).

events(0, Acc) ->
    receive {?MSG, E} -> events(0, [E | Acc]) after 200 -> lists:reverse(Acc) end;
events(N, Acc) ->
    receive {?MSG, E} -> events(N - 1, [E | Acc]) after 5000 -> lists:reverse(Acc) end.

flush() ->
    receive {?MSG, _} -> flush() after 0 -> ok end.
