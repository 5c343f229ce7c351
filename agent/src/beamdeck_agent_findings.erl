%%% @doc The one schema of an upgrade plan's findings (docs/protocol.md,
%%% "Findings"): `{id, check, severity, module, pids, count, message, fix}'.
%%%
%%% Every check that adds to a plan makes its findings here, so the
%%% severity of a check and the shape of the id are decided once:
%%% - `id' is stable across plans of the same node and step:
%%%   `check:module[:detail]' (`-' stands for the module of a node-wide
%%%   check), so an operator can accept it by name (`--accept-finding ID');
%%% - `severity' follows from the check alone (`error' findings gate a step);
%%% - at most ?MAX_PIDS pids are listed, `count' says how many there are.
%%% Lint stays in the plan's `lint[]'.
-module(beamdeck_agent_findings).

-export([new/5, new/6, severity/1, error_ids/1]).

-define(MAX_PIDS, 100).

-type check() :: appup_missing_module | code_change_crash | not_suspended | emulator_restart
               | sys_config_unreadable | running_code_differs | supervisor_children_changed
               | sys_unresponsive | fun_in_ets | fun_in_persistent_term | fun_in_app_env
               | load_order | sys_config_changed | lint_unavailable | nif_module
               | rehearsal_inconclusive.
-type severity() :: error | warning | info.
-type finding() :: #{id := binary(), check := check(), severity := severity(),
                     module := binary() | null, pids := [binary()], count := non_neg_integer(),
                     message := binary(), fix := binary()}.
-export_type([check/0, severity/0, finding/0]).

%% @doc A finding of `Check' about `Module' (`null' for the whole node)
%% concerning `Pids'; the id is `check:module'.
-spec new(Check, Module, Pids, Message, Fix) -> finding()
    when Check :: check(), Module :: module() | null, Pids :: [pid()],
         Message :: binary(), Fix :: binary().
new(Check, Module, Pids, Message, Fix) ->
    new(Check, Module, null, Pids, Message, Fix).

%% @doc new/5 with a `Detail' that tells findings of one check and module
%% apart (the id is `check:module:detail').
-spec new(Check, Module, Detail, Pids, Message, Fix) -> finding()
    when Check :: check(), Module :: module() | null, Detail :: binary() | null,
         Pids :: [pid()], Message :: binary(), Fix :: binary().
new(Check, Module, Detail, Pids, Message, Fix) ->
    ModText = case Module of
                  null -> null;
                  _ -> atom_to_binary(Module, utf8)
              end,
    Id = iolist_to_binary([atom_to_binary(Check, utf8), $:,
                           case ModText of null -> <<"-">>; _ -> ModText end,
                           case Detail of null -> <<>>; _ -> [$:, Detail] end]),
    Sorted = lists:usort(Pids),
    #{id => Id, check => Check, severity => severity(Check), module => ModText,
      pids => [beamdeck_agent_terms:pid(P) || P <- lists:sublist(Sorted, ?MAX_PIDS)],
      count => length(Sorted), message => Message, fix => Fix}.

%% @doc The severity of a check's findings (decisions.md, "Plans, gates,
%% findings"): errors gate the step, warnings and infos inform.
-spec severity(Check) -> severity() when Check :: check().
severity(appup_missing_module) -> error;
severity(code_change_crash) -> error;
severity(not_suspended) -> error;
severity(emulator_restart) -> error;
severity(sys_config_unreadable) -> error;
severity(running_code_differs) -> warning;
severity(supervisor_children_changed) -> warning;
severity(sys_unresponsive) -> warning;
severity(fun_in_ets) -> warning;
severity(fun_in_persistent_term) -> warning;
severity(fun_in_app_env) -> warning;
severity(load_order) -> warning;
severity(sys_config_changed) -> warning;
severity(lint_unavailable) -> warning;
severity(nif_module) -> info;
severity(rehearsal_inconclusive) -> info.

%% @doc The sorted ids of the error findings among `Findings': what a gate
%% must accept.
-spec error_ids(Findings) -> [binary()] when Findings :: [finding()].
error_ids(Findings) ->
    lists:usort([Id || #{id := Id, severity := error} <- Findings]).
