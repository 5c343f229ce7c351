%%% @doc The outcome of an upgrade step that was running when the agent
%%% (or the node) stopped, inferred from the release statuses at the next
%%% start (beamdeck_agent_upgrade's `infer').
-module(beamdeck_agent_upgrade_infer).

-export([infer/1]).

-define(INFER_TRIES, 20).

-type outcome() :: {ok, map()} | {error, atom(), binary(), map() | null}.

%% @doc The outcome of a step that was running when the agent stopped,
%% from the release statuses now (release_handler may still be busy
%% finishing it: which_releases is retried).
-spec infer(Entry) -> outcome() when Entry :: map().
infer(#{action := Action, vsn := VsnB, step := Step} = E) ->
    Rels = releases_retry(?INFER_TRIES),
    Status = case VsnB of
                 null -> undefined;
                 _ -> case [S || #{vsn := V, status := S} <- Rels, V =:= binary_to_list(VsnB)] of
                          [S | _] -> S;
                          [] -> undefined
                      end
             end,
    Base = #{action => Action, vsn => VsnB, inferred => true, interruptedStep => Step,
             releases => beamdeck_agent_release:rels_json(Rels),
             restartedNode => maps:get(bootId, E, null) =/= boot_id()},
    Ok = case Action of
             unpack -> Status =/= undefined;
             install -> Status =:= current orelse Status =:= permanent;
             make_permanent -> Status =:= permanent;
             rollback -> Status =:= current orelse Status =:= permanent
         end,
    case Ok of
        true -> {ok, Base#{status => Status}};
        false ->
            {error, interrupted,
             beamdeck_agent_terms:fmt("~ts ~ts was interrupted during ~ts (the agent or the node restarted) and did not "
                 "complete: the release is ~ts", [Action, vsn_text(VsnB), Step,
                                                    case Status of undefined -> "absent"; St0 -> St0 end]),
             Base#{status => Status}}
    end.

releases_retry(0) -> [];
releases_retry(N) ->
    case beamdeck_agent_release:releases_info() of
        #{stale := false, rels := Rels} -> Rels;
        #{handler := false, rels := Rels} -> Rels;
        _ -> timer:sleep(500), releases_retry(N - 1)
    end.

%%% HELPERS %%%

boot_id() ->
    try beamdeck_agent_config:boot_id() catch _:_ -> null end.

vsn_text(null) -> "";
vsn_text(V) -> V.

