-module(beamdeck_agent_restarts_tests).
%% Real supervisors and real processes: a permanent child comes back, a
%% temporary one and an unsupervised process do not.
-include_lib("eunit/include/eunit.hrl").

-behaviour(supervisor).
-export([init/1, start_worker/0]).

init(sofo) ->
    {ok, {#{strategy => simple_one_for_one}, [#{id => w, start => {?MODULE, start_worker, []}, restart => temporary}]}};
init(mixed) ->
    {ok, {#{strategy => one_for_one},
          [#{id => perm, start => {?MODULE, start_worker, []}, restart => permanent},
           #{id => trans, start => {?MODULE, start_worker, []}, restart => transient},
           #{id => temp, start => {?MODULE, start_worker, []}, restart => temporary}]}}.

start_worker() -> {ok, proc_lib:spawn_link(fun() -> receive stop -> ok end end)}.

killed(P) -> #{pid => P, fate => killed, 'when' => install, why => <<>>}.

child(Sup, Id) -> hd([P || {I, P, _, _} <- supervisor:which_children(Sup), I =:= Id]).

outcomes_test() ->
    process_flag(trap_exit, true),
    {ok, Mixed} = supervisor:start_link(?MODULE, mixed),
    {ok, Sofo} = supervisor:start_link(?MODULE, sofo),
    {ok, Task} = supervisor:start_child(Sofo, []),
    Bare = spawn(fun() -> receive stop -> ok end end),
    Perm = child(Mixed, perm),
    Trans = child(Mixed, trans),
    Temp = child(Mixed, temp),
    Stays = #{pid => Perm, fate => suspended, 'when' => install, why => <<>>},
    Out = beamdeck_agent_restarts:annotate([killed(Perm), killed(Trans), killed(Temp), killed(Task), killed(Bare), Stays], 2000),
    [P1, P2, P3, P4, P5, P6] = Out,
    ?assertMatch(#{after_kill := #{outcome := restarted, restart := permanent, supervisor := Mixed}}, P1),
    ?assertMatch(#{after_kill := #{outcome := restarted, restart := transient}}, P2),
    ?assertMatch(#{after_kill := #{outcome := gone, restart := temporary}}, P3),
    ?assertMatch(#{after_kill := #{outcome := gone, restart := temporary, supervisor := Sofo}}, P4),
    ?assertMatch(#{after_kill := #{outcome := gone, supervisor := undefined}}, P5),
    ?assertNot(maps:is_key(after_kill, P6)),
    ?assertMatch(#{afterKill := #{outcome := restarted, restart := permanent}}, beamdeck_agent_restarts:json(P1)),
    ?assertEqual(#{}, beamdeck_agent_restarts:json(P6)),
    Bare ! stop,
    [begin unlink(S), exit(S, shutdown) end || S <- [Mixed, Sofo]],
    ok.

%% A supervisor that does not answer: `unknown' within the budget, no wait.
stuck_supervisor_test() ->
    process_flag(trap_exit, true),
    {ok, Mixed} = supervisor:start_link(?MODULE, mixed),
    Perm = child(Mixed, perm),
    ok = sys:suspend(Mixed),
    T0 = erlang:monotonic_time(millisecond),
    [E] = beamdeck_agent_restarts:annotate([killed(Perm)], 300),
    ?assert(erlang:monotonic_time(millisecond) - T0 < 5000),
    ?assertMatch(#{after_kill := #{outcome := unknown, supervisor := Mixed}}, E),
    ok = sys:resume(Mixed),
    unlink(Mixed),
    exit(Mixed, shutdown),
    ok.
