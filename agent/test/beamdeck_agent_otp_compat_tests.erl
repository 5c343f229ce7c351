%%% The code paths for newer OTPs, each behind a runtime check: these tests
%%% assert which path runs on the OTP they run on (25 on the host, 27 and 29
%%% in the Debian chroots of scripts/otp-chroot.sh), so a check that stops
%%% finding the newer API fails here instead of silently falling back, and
%%% then exercise that path.
-module(beamdeck_agent_otp_compat_tests).

-include_lib("eunit/include/eunit.hrl").

otp() -> list_to_integer(erlang:system_info(otp_release)).

%% OTP 27 added the `json' module.
json_backend_test() ->
    Expected = case otp() >= 27 of
                   true -> otp_json;
                   false -> builtin
               end,
    ?assertEqual(Expected, beamdeck_agent_json:backend()),
    Term = #{a => [1, <<"x">>, true, null, -2.5], b => #{c => <<"é\n"/utf8>>}},
    Bin = iolist_to_binary(beamdeck_agent_json:encode(Term)),
    ?assertEqual({ok, #{<<"a">> => [1, <<"x">>, true, null, -2.5],
                        <<"b">> => #{<<"c">> => <<"é\n"/utf8>>}}},
                 beamdeck_agent_json:decode(Bin)),
    ?assertMatch({error, _}, beamdeck_agent_json:decode(<<"{\"a\":">>)),
    ?assertEqual({error, {too_deep, 2}}, beamdeck_agent_json:decode(<<"[[[]]]">>, #{max_depth => 2})).

%% OTP 28 added erlang:processes_iterator/0.
process_walk_test() ->
    Expected = case otp() >= 28 of
                   true -> iterator;
                   false -> list
               end,
    ?assertEqual(Expected, beamdeck_agent_procinfo:cursor_mode()),
    Cursor = beamdeck_agent_procinfo:cursor(),
    ?assertEqual(Expected =:= list, is_list(Cursor)),
    Holder = spawn(fun() -> receive stop -> ok end end),
    Walked = walk(beamdeck_agent_procinfo:cursor(), []),
    Holder ! stop,
    ?assert(lists:member(self(), Walked)),
    ?assert(lists:member(Holder, Walked)),
    ?assertEqual(length(Walked), length(lists:usort(Walked))),
    %% Every process alive before and after the walk was seen.
    Stable = [P || P <- erlang:processes(), is_process_alive(P), P =/= Holder],
    ?assertEqual([], [P || P <- Stable, not lists:member(P, Walked), is_process_alive(P)]),
    ?assert(lists:all(fun(P) -> lists:member(P, Walked) end, [whereis(init), whereis(code_server)])).

walk(Cursor, Acc) ->
    case beamdeck_agent_procinfo:next(Cursor) of
        none -> Acc;
        {P, Rest} -> walk(Rest, [P | Acc])
    end.

%% OTP 26.2 added process_info(Pid, {dictionary, Key}).
dict_key_test() ->
    case otp() of
        26 -> ok;  % 26.0/26.1 lack it, 26.2 has it
        N when N >= 27 -> ?assertEqual(key, beamdeck_agent_procinfo:dict_mode());
        _ -> ?assertEqual(full, beamdeck_agent_procinfo:dict_mode())
    end,
    Self = self(),
    P = spawn(fun() -> put(bd_key, {some, value}), Self ! ready, receive stop -> ok end end),
    receive ready -> ok end,
    ?assertEqual({ok, {some, value}}, beamdeck_agent_procinfo:dict_get(P, bd_key)),
    ?assertEqual(undefined, beamdeck_agent_procinfo:dict_get(P, bd_missing)),
    Ref = monitor(process, P),
    P ! stop,
    receive {'DOWN', Ref, _, _, _} -> ok end,
    ?assertEqual(gone, beamdeck_agent_procinfo:dict_get(P, bd_key)),
    %% read_new/2 takes '$initial_call' and '$ancestors' by the same path.
    Q = proc_lib:spawn(timer, sleep, [infinity]),
    try
        waiting(Q),
        {_Dyn, {IC, Ancestors, _App, _Label}, _Apps} = beamdeck_agent_procinfo:read_new(Q, #{}),
        ?assertEqual({timer, sleep, 1}, IC),
        ?assertEqual(1, length(Ancestors))
    after
        exit(Q, kill)
    end.

%% proc_lib fills the dictionary before the process first waits.
waiting(P) ->
    case process_info(P, status) of
        {status, waiting} -> ok;
        _ -> timer:sleep(5), waiting(P)
    end.

%% OTP 26 added application:get_supervisor/1.
app_supervisor_test() ->
    Expected = case otp() >= 26 of
                   true -> get_supervisor;
                   false -> application_master
               end,
    ?assertEqual(Expected, beamdeck_agent_otp:app_supervisor_mode()),
    KernelSup = whereis(kernel_sup),
    ?assert(is_pid(KernelSup)),
    ?assertEqual({ok, KernelSup}, beamdeck_agent_otp:app_supervisor(kernel, 5000)),
    ?assertMatch({error, _}, beamdeck_agent_otp:app_supervisor(bd_no_such_app, 5000)).
