%%% @doc A module that changes between the versions but is missing from the
%%% appup: after the upgrade it still answers "1.0.0".
-module(bd_checks_missing).
-export([vsn/0]).

%% @doc The version this code came from.
-spec vsn() -> string().
vsn() -> "1.0.0".
