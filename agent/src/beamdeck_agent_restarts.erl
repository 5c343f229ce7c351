%%% @doc Killed and gone, or killed and restarted (issue 14, item 5).
%%%
%%% For the killed processes a plan lists, who brings them back: a process
%%% whose parent is a supervisor is restarted unless its child spec says
%%% `temporary' (a permanent child always, a transient one because `killed'
%%% is an abnormal exit); a process with no supervisor above it is gone for
%%% good (an unsupervised connection handler: its client's connection
%%% drops). A restarted child starts on the module's current code, which is
%%% the new version by then. Every supervisor call has a timeout and all of
%%% them share one budget; past it the answer is `unknown', never a wait.
-module(beamdeck_agent_restarts).

-export([annotate/2, json/1]).

-define(CALL_TIMEOUT, 500).

-type after_kill() :: #{outcome := restarted | gone | unknown,
                        supervisor := pid() | undefined,
                        restart := permanent | transient | temporary | undefined,
                        why := binary()}.
-export_type([after_kill/0]).

%% @doc Adds `after_kill' to every entry whose fate is `killed' (others are
%% returned as they are), asking each supervisor at most twice, within
%% `BudgetMs' for all of them.
-spec annotate([Entry], BudgetMs :: non_neg_integer()) -> [Entry] when Entry :: map().
annotate(Entries, BudgetMs) ->
    Deadline = erlang:monotonic_time(millisecond) + BudgetMs,
    Killed = lists:usort([P || #{fate := killed, pid := P} <- Entries, is_pid(P)]),
    BySup = group([{parent_supervisor(P), P} || P <- Killed]),
    Known = maps:from_list(lists:append([outcomes(Sup, Pids, Deadline) || {Sup, Pids} <- BySup])),
    [case E of
         #{fate := killed, pid := P} -> E#{after_kill => maps:get(P, Known, unknown(undefined))};
         _ -> E
     end || E <- Entries].

%% @doc The wire form of an entry's `after_kill' (`afterKill' in the plan's
%% process, docs/protocol.md): an empty map when the entry has none, so the
%% field is optional and older servers ignore it.
-spec json(map()) -> map().
json(#{after_kill := #{outcome := O, supervisor := Sup, restart := R, why := Why}}) ->
    #{afterKill => #{outcome => O,
                     supervisor => case Sup of undefined -> null; _ -> beamdeck_agent_terms:pid(Sup) end,
                     restart => case R of undefined -> null; _ -> R end,
                     why => Why}};
json(_) -> #{}.

%% ---- internals ----

group(Pairs) ->
    maps:to_list(lists:foldl(fun({K, V}, Acc) -> maps:update_with(K, fun(L) -> [V | L] end, [V], Acc) end,
                             #{}, Pairs)).

parent_supervisor(P) ->
    case erlang:process_info(P, parent) of
        {parent, Parent} when is_pid(Parent), node(Parent) =:= node() ->
            case is_supervisor(Parent) of
                true -> Parent;
                false -> none
            end;
        _ -> none
    end.

is_supervisor(Pid) ->
    try proc_lib:translate_initial_call(Pid) of
        {supervisor, _, _} -> true;
        _ -> false
    catch _:_ -> false
    end.

outcomes(none, Pids, _Deadline) ->
    [{P, #{outcome => gone, supervisor => undefined, restart => undefined,
           why => <<"no supervisor above it: nothing restarts it (a client connection it served drops)">>}}
     || P <- Pids];
outcomes(Sup, Pids, Deadline) ->
    case restart_types(Sup, Pids, Deadline) of
        {ok, Types} ->
            [{P, outcome(Sup, maps:get(P, Types, undefined))} || P <- Pids];
        error ->
            [{P, unknown(Sup)} || P <- Pids]
    end.

%% A simple_one_for_one supervisor answers get_childspec for a child's pid
%% (one spec for all children); any other needs the child's id first.
restart_types(Sup, [First | _] = Pids, Deadline) ->
    case ask(Sup, fun() -> supervisor:get_childspec(Sup, First) end, Deadline) of
        {ok, {ok, Spec}} ->
            R = restart_of(Spec),
            {ok, maps:from_list([{P, R} || P <- Pids])};
        {ok, {error, not_found}} ->
            case ask(Sup, fun() -> supervisor:which_children(Sup) end, Deadline) of
                {ok, Children} ->
                    Ids = [{P, Id} || {Id, P, _, _} <- Children, lists:member(P, Pids)],
                    {ok, maps:from_list([{P, R} || {P, Id} <- Ids, R <- [spec_restart(Sup, Id, Deadline)],
                                                   R =/= undefined])};
                error -> error
            end;
        _ -> error
    end.

spec_restart(Sup, Id, Deadline) ->
    case ask(Sup, fun() -> supervisor:get_childspec(Sup, Id) end, Deadline) of
        {ok, {ok, Spec}} -> restart_of(Spec);
        _ -> undefined
    end.

restart_of(#{restart := R}) -> R;
restart_of({_Id, _Start, R, _Shutdown, _Type, _Mods}) -> R;
restart_of(_) -> undefined.

ask(_Sup, Fun, Deadline) ->
    Left = Deadline - erlang:monotonic_time(millisecond),
    case Left > 0 andalso beamdeck_agent_otp:call(Fun, min(Left, ?CALL_TIMEOUT)) of
        {ok, V} -> {ok, V};
        _ -> error
    end.

outcome(Sup, temporary) ->
    #{outcome => gone, supervisor => Sup, restart => temporary,
      why => <<"a temporary child: its supervisor does not restart it">>};
outcome(Sup, R) when R =:= permanent; R =:= transient ->
    #{outcome => restarted, supervisor => Sup, restart => R,
      why => <<"its supervisor restarts it, on the code loaded by then (the new version)">>};
outcome(Sup, _) -> unknown(Sup).

unknown(Sup) ->
    #{outcome => unknown, supervisor => Sup, restart => undefined,
      why => <<"its supervisor did not say in time whether it restarts it">>}.
