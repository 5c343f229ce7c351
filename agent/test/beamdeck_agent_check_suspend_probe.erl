%% A minimal gen_server for the checks' EUnit tests: state is what init gets.
-module(beamdeck_agent_check_suspend_probe).
-behaviour(gen_server).
-export([init/1, handle_call/3, handle_cast/2, code_change/3]).
init(State) -> {ok, State}.
handle_call(get, _From, S) -> {reply, S, S}.
handle_cast(_, S) -> {noreply, S}.
code_change(_Old, S, _Extra) -> {ok, S}.
