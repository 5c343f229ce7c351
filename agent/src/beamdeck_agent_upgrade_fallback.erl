%%% @doc The install step's side of the fallback timer (in the runner):
%%% the record an install with `fallbackMs' journals before
%%% install_release, and the rollback plan computed right after it, whose
%%% digest and kills become the gate the fallback rolls back under
%%% (beamdeck_agent_fallback runs the timer).
-module(beamdeck_agent_upgrade_fallback).

-export([record/3, prepare/1, arm/2]).

-type pending() :: none | {beamdeck_agent_fallback_record:fallback(), Params :: map()}.
-export_type([pending/0]).

%% @doc The fallback an install command asks for (`none' without
%% `fallback_ms'); the deadline counts from now, before install_release.
-spec record(Cmd, From, To) -> pending() when Cmd :: map(), From :: string(), To :: string().
record(#{fallback_ms := Ms, id := Id} = Cmd, From, To) when is_integer(Ms), Ms > 0 ->
    Now = beamdeck_agent_terms:now_ms(),
    {#{vsn => bin(To), from => bin(From), deadline => Now + Ms, durationMs => Ms, commandId => Id,
       armedAt => Now, rollbackDigest => null, maxKills => null, acceptFindings => []},
     maps:get(params, Cmd, #{})};
record(_Cmd, _From, _To) ->
    none.

%% @doc Journal the record and start its timer (no-op without a fallback).
-spec prepare(Ctx) -> ok | {error, binary()} when Ctx :: map().
prepare(#{fallback := {Record, _Params}}) -> beamdeck_agent_fallback:prepare(Record);
prepare(_Ctx) -> ok.

%% @doc After a successful install: the rollback plan (to the `from'
%% release, with this install's purge choices, as the rollback command
%% would run it), its digest into the record, and the record into the
%% install's result as `fallback'.
-spec arm(Ctx, Result) -> map() when Ctx :: map(), Result :: map().
arm(#{fallback := {#{from := From, vsn := To, commandId := Id}, Params}} = Ctx, Result) ->
    Choices = (beamdeck_agent_upgrade_steps:choices_by_vsn(maps:get(journal, Ctx, [])))#{To => Params},
    Plan = case beamdeck_agent_plan:plan_facts(#{<<"vsn">> => From}, #{rollback_choices => Choices}) of
               {ok, #{digest := Digest}, Facts} ->
                   #{rollbackDigest => Digest, maxKills => length(beamdeck_agent_gate:killed(Facts)),
                     acceptFindings => maps:get(error_ids, Facts)};
               {error, Code, Msg} ->
                   logger:warning("beamdeck agent: the fallback's rollback plan failed (~ts: ~ts); it "
                                  "will roll back only if nobody is killed", [Code, Msg]),
                   #{rollbackDigest => null, maxKills => null, acceptFindings => []}
           end,
    Result#{fallback => beamdeck_agent_fallback:armed(Id, Plan)};
arm(_Ctx, Result) ->
    Result.

bin(S) -> unicode:characters_to_binary(S).
