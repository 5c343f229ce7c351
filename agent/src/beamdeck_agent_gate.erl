%%% @doc The plan digest and the gate of a step (docs/upgrades.md, "Gates").
%%%
%%% A plan's facts are what an operator accepts when they accept a plan:
%%% the node, its boot id, the step, the purge settings as applied, every
%%% pid each step kills, the pids that block the install, and the ids of
%%% the error findings. The digest is a SHA-256 over a canonical term of
%%% them (sorted lists, no maps), so the same facts give the same digest
%%% whatever order the scan found them in.
%%%
%%% The runner recomputes the facts right before a step and checks them
%%% against the gate the command carries (`acceptPlan', `maxKills',
%%% `acceptFindings'): it refuses with `plan_changed' when a pid would die
%%% that the gate did not accept, or an error finding is not accepted.
%%% Fewer kills than reviewed is fine. This check lives here only; the
%%% server only makes sure that some gate was given.
-module(beamdeck_agent_gate).

-export([digest/1, parse/1, check/3, killed/1]).

-define(MAX_FINDINGS, 200).
-define(MAX_LISTED, 100).

-type step() :: install | make_permanent | rollback.
-type facts() :: #{node := binary(), boot_id := binary() | null, step := step(),
                   choices := [{binary(), atom(), atom()}],
                   killed := #{install := [binary()], make_permanent := [binary()]},
                   blocked := [binary()], error_ids := [binary()]}.
-type gate() :: #{plan := binary() | null, max_kills := non_neg_integer() | null,
                  findings := [binary()]}.
-export_type([facts/0, gate/0]).

%% @doc The plan digest: lowercase hex SHA-256 of the canonical facts.
-spec digest(Facts) -> binary() when Facts :: facts().
digest(#{node := Node, boot_id := Boot, step := Step, choices := Choices,
         killed := #{install := KI, make_permanent := KP}, blocked := Blocked,
         error_ids := Errors}) ->
    Canonical = {beamdeck_plan, 1, Node, Boot, Step, lists:usort(Choices),
                 lists:usort(KI), lists:usort(KP), lists:usort(Blocked), lists:usort(Errors)},
    string:lowercase(binary:encode_hex(crypto:hash(sha256, term_to_binary(Canonical, [{minor_version, 2}])))).

%% @doc Every pid the facts kill, over all steps, sorted.
-spec killed(Facts) -> [binary()] when Facts :: facts().
killed(#{killed := #{install := KI, make_permanent := KP}}) ->
    lists:usort(KI ++ KP).

%% @doc The gate of a command from its params: `params.gate', an object of
%% `acceptPlan' (a digest), `maxKills' and `acceptFindings' (finding ids);
%% absent, nothing is accepted.
-spec parse(Params) -> {ok, gate()} | {error, bad_request, binary()} when Params :: map().
parse(Params) ->
    case maps:get(<<"gate">>, Params, null) of
        null -> {ok, #{plan => null, max_kills => null, findings => []}};
        G when is_map(G) ->
            Plan = maps:get(<<"acceptPlan">>, G, null),
            Max = maps:get(<<"maxKills">>, G, null),
            Findings = maps:get(<<"acceptFindings">>, G, []),
            PlanOk = Plan =:= null orelse (is_binary(Plan) andalso byte_size(Plan) =:= 64),
            MaxOk = Max =:= null orelse (is_integer(Max) andalso Max >= 0),
            FindingsOk = is_list(Findings) andalso length(Findings) =< ?MAX_FINDINGS
                andalso lists:all(fun(F) -> is_binary(F) andalso byte_size(F) =< 512 end, Findings),
            case PlanOk andalso MaxOk andalso FindingsOk of
                true -> {ok, #{plan => Plan, max_kills => Max, findings => Findings}};
                false -> {error, bad_request,
                          <<"params.gate: acceptPlan must be a 64-character digest, maxKills a "
                            "non-negative integer, acceptFindings a list of finding ids">>}
            end;
        _ -> {error, bad_request, <<"params.gate must be an object">>}
    end.

%% @doc Check the recomputed `Facts' against `Gate'. `Reviewed' is the
%% facts of the plan whose digest the gate accepts (`none' when that plan
%% is unknown: another boot, or too long ago). Accepted kills: those of
%% the reviewed plan (with `acceptPlan') and at most `maxKills' (with
%% `maxKills'); each gate given must hold, and without one no pid may die.
%% Accepted error findings: those of the reviewed plan and `acceptFindings'.
-spec check(Gate, Facts, Reviewed) -> ok | {error, plan_changed, binary(), map()}
    when Gate :: gate(), Facts :: facts(), Reviewed :: facts() | none.
check(#{plan := Plan, max_kills := Max, findings := Accepted}, Facts, Reviewed) ->
    Digest = digest(Facts),
    Killed = killed(Facts),
    Errors = maps:get(error_ids, Facts),
    case Plan =:= Digest of
        true -> ok;
        false ->
            {ReviewedKills, ReviewedErrors} =
                case Reviewed of
                    none -> {[], []};
                    _ -> {killed(Reviewed), maps:get(error_ids, Reviewed)}
                end,
            Outside = case {Plan, Max} of
                          {null, null} -> Killed;
                          {null, _} -> [];
                          _ -> Killed -- ReviewedKills
                      end,
            TooMany = Max =/= null andalso length(Killed) > Max,
            Unaccepted = Errors -- (Accepted ++ ReviewedErrors),
            case Outside =:= [] andalso not TooMany andalso Unaccepted =:= [] of
                true -> ok;
                false ->
                    {error, plan_changed,
                     refusal(Plan, Reviewed, Outside, TooMany, Max, length(Killed), Unaccepted),
                     #{digest => Digest, acceptedDigest => Plan,
                       reviewedKnown => Reviewed =/= none,
                       kills => length(Killed), maxKills => Max,
                       unacceptedKills => lists:sublist(Outside, ?MAX_LISTED),
                       unacceptedKillCount => length(Outside),
                       unacceptedFindings => Unaccepted}}
            end
    end.

refusal(Plan, Reviewed, Outside, TooMany, Max, Kills, Unaccepted) ->
    Parts = [[beamdeck_agent_terms:fmt("~b process(es) would be killed that the reviewed plan did not kill (~ts)",
                  [length(Outside), lists:join(", ", lists:sublist(Outside, 5))])
              || Outside =/= [], Plan =/= null, Reviewed =/= none],
             [<<"the reviewed plan is not known to the agent (it restarted, or the plan is "
                "too old): review the plan again">> || Plan =/= null, Reviewed =:= none],
             [beamdeck_agent_terms:fmt("~b process(es) would be killed and no gate accepts kills", [length(Outside)])
              || Outside =/= [], Plan =:= null, Max =:= null],
             [beamdeck_agent_terms:fmt("~b process(es) would be killed, more than the accepted maximum of ~b",
                  [Kills, Max]) || TooMany],
             [beamdeck_agent_terms:fmt("error finding(s) not accepted: ~ts", [lists:join(", ", Unaccepted)])
              || Unaccepted =/= []]],
    iolist_to_binary(["the plan changed since it was reviewed: ",
                      lists:join("; ", lists:append(Parts))]).

