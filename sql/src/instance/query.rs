//! Queries (`SELECT`, `EXPLAIN`): planned by DataFusion and executed at
//! one read timestamp; with bound parameters, through the session's
//! [`PlanCache`](super::plan_cache::PlanCache), reusing a prepared search's
//! physical plan with only its query vector and read timestamp swapped.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::ParamValues;
use datafusion::physical_plan::{execute_stream, ExecutionPlan};
use datafusion::sql::sqlparser::ast::Statement;
use quiver_exec::table::session_search_settings;
use quiver_exec::vector_search::VectorSearchExec;
use quiver_planner::search_subqueries::{evaluate_search_subqueries, has_search_subquery};
use quiver_planner::vector_search::{bound_query_vector, single_search_node};

use super::plan_cache::{CachedSearch, PlanKey};
use super::session::SqlSession;
use super::session_cmds;
use super::state::{bind, Instance};
use crate::error::Result;
use crate::handler::pg::PgOutput;
use crate::handler::KeyedPlan;

impl Instance {
    pub(super) async fn query(
        &self,
        session: &mut SqlSession,
        statement: &Statement,
        params: Option<ParamValues>,
    ) -> Result<PgOutput> {
        let read_ts = self.set_read_ts(session).await?;
        if let (Statement::Query(_), Some(params)) = (statement, params.as_ref()) {
            return self
                .prepared_query(session, statement, params, read_ts)
                .await;
        }
        let plan = self.plan(session, statement).await?;
        let plan = bind(plan, params.as_ref())?;
        let plan = evaluate_search_subqueries(plan, &session.ctx).await?;
        let df = session.ctx.execute_logical_plan(plan).await?;
        let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
        let schema = super::output_names::rename_schema(statement, schema);
        let stream = df.execute_stream().await?;
        let command = match statement {
            Statement::Explain { .. } => "EXPLAIN",
            _ => "SELECT",
        };
        Ok(PgOutput::Rows {
            schema,
            stream,
            command: command.to_string(),
        })
    }

    /// A query with bound parameters (extended protocol): its optimized plan
    /// is made once per statement, catalog version and search path, and
    /// reused with each execution's parameters (the vector-search rewrite
    /// works on the `$n` placeholder, so it is part of the cached plan).
    /// A search whose only parameter is its query vector keeps its physical
    /// plan too: later executions only swap the vector and read timestamp.
    async fn prepared_query(
        &self,
        session: &mut SqlSession,
        statement: &Statement,
        params: &ParamValues,
        read_ts: u64,
    ) -> Result<PgOutput> {
        let key = PlanKey {
            sql: statement.to_string(),
            schema: session_cmds::current_schema(session),
            catalog_version: self.coordinator().catalog_version().await?,
        };
        let output = self
            .cached_query(
                session,
                key,
                PlanSource::Statement(statement),
                params,
                read_ts,
            )
            .await?;
        Ok(match output {
            PgOutput::Rows {
                schema,
                stream,
                command,
            } => PgOutput::Rows {
                schema: super::output_names::rename_schema(statement, schema),
                stream,
                command,
            },
            other => other,
        })
    }

    /// A typed plan with bound parameters (the Milvus door's searches),
    /// through the same cache as prepared statements, under the front
    /// end's `key`: `build` makes the plan from the table's scan and the
    /// session's functions only when the cache lacks it.
    pub(super) async fn keyed_plan(
        &self,
        session: &mut SqlSession,
        plan: KeyedPlan<'_>,
        params: &ParamValues,
    ) -> Result<PgOutput> {
        let read_ts = self.set_read_ts(session).await?;
        let key = PlanKey {
            sql: format!("typed plan {}", plan.key),
            schema: String::new(),
            catalog_version: self.coordinator().catalog_version().await?,
        };
        self.cached_query(session, key, PlanSource::Typed(plan), params, read_ts)
            .await
    }

    /// Runs a query through the session's plan cache; `source` plans it on a miss.
    async fn cached_query(
        &self,
        session: &mut SqlSession,
        key: PlanKey,
        source: PlanSource<'_>,
        params: &ParamValues,
        read_ts: u64,
    ) -> Result<PgOutput> {
        let settings = session_search_settings(&*session.ctx.state_ref().read());
        // A plan made in a transaction with writes holds them: neither
        // reused nor kept.
        let reusable = !super::transaction::holds_changes(session);
        if let Some(search) = session.plans.search(&key, settings).filter(|_| reusable) {
            let vector = bound_query_vector(&search.node, params)?;
            let physical = rebind_search(&search.physical, vector, read_ts)?;
            let stream = execute_stream(physical, search.task_ctx.clone())?;
            self.reused_search_plans
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return Ok(PgOutput::Rows {
                schema: search.schema.clone(),
                stream,
                command: "SELECT".to_string(),
            });
        }
        let plan = match session.plans.get(&key) {
            Some(plan) => plan,
            None => {
                let plan = match source {
                    PlanSource::Statement(statement) => self.plan(session, statement).await?,
                    PlanSource::Typed(typed) => {
                        let scan = self
                            .scan_builder(session, typed.database, typed.table)
                            .await?;
                        (typed.build)(scan, &session.ctx)?
                    }
                };
                if has_search_subquery(&plan) {
                    // The subquery's value is part of the plan: made
                    // again for every execution, never cached.
                    return self.uncached_query(session, plan, params).await;
                }
                let optimized = session.ctx.state().optimize(&plan)?;
                session.plans.insert(key.clone(), optimized.clone());
                optimized
            }
        };
        let search_node = single_search_node(&plan);
        let bound = quiver_planner::vector_search::bind_search_vectors(plan, params)?;
        let only_vector_params = bound.get_parameter_types()?.is_empty();
        let bound =
            super::limit_params::fold_limit_params(bound.with_param_values(params.clone())?)?;
        let state = session.ctx.state();
        let physical = state
            .query_planner()
            .create_physical_plan(&bound, &state)
            .await?;
        let schema: SchemaRef = Arc::new(bound.schema().as_arrow().clone());
        let task_ctx = state.task_ctx();
        if let Some(node) = search_node.filter(|_| only_vector_params && reusable) {
            if searches_only(&physical) {
                session.plans.set_search(
                    &key,
                    CachedSearch {
                        node,
                        physical: physical.clone(),
                        settings,
                        task_ctx: task_ctx.clone(),
                        schema: schema.clone(),
                    },
                );
            }
        }
        let stream = execute_stream(physical, task_ctx)?;
        Ok(PgOutput::Rows {
            schema,
            stream,
            command: "SELECT".to_string(),
        })
    }
}

impl Instance {
    /// A query whose plan holds values of this execution (a search's
    /// query vector from a scalar subquery): parameters bound, the
    /// subqueries evaluated, then planned and run as a plain query.
    async fn uncached_query(
        &self,
        session: &mut SqlSession,
        plan: datafusion::logical_expr::LogicalPlan,
        params: &ParamValues,
    ) -> Result<PgOutput> {
        let plan = quiver_planner::vector_search::bind_search_vectors(plan, params)?;
        let plan = super::limit_params::fold_limit_params(plan.with_param_values(params.clone())?)?;
        let plan = evaluate_search_subqueries(plan, &session.ctx).await?;
        let df = session.ctx.execute_logical_plan(plan).await?;
        let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
        let stream = df.execute_stream().await?;
        Ok(PgOutput::Rows {
            schema,
            stream,
            command: "SELECT".to_string(),
        })
    }
}

/// Where a query's plan comes from on a cache miss.
enum PlanSource<'a> {
    Statement(&'a Statement),
    Typed(KeyedPlan<'a>),
}

/// True when every leaf of `plan` is a search, and there is one: such a plan
/// reads nothing fixed at planning time (a table scan holds its snapshot).
fn searches_only(plan: &Arc<dyn ExecutionPlan>) -> bool {
    let mut searches = 0;
    let mut other_leaves = 0;
    let _ = plan.apply(|node| {
        if node.is::<VectorSearchExec>() {
            searches += 1;
        } else if node.children().is_empty() {
            other_leaves += 1;
        }
        Ok(TreeNodeRecursion::Continue)
    });
    searches == 1 && other_leaves == 0
}

/// `plan` with its search's query vector and read timestamp replaced, and
/// every other operator's execution state reset (a top-k sort keeps a
/// dynamic filter per execution). `plan` holds one search
/// ([`searches_only`]).
fn rebind_search(
    plan: &Arc<dyn ExecutionPlan>,
    vector: Vec<f32>,
    read_ts: u64,
) -> Result<Arc<dyn ExecutionPlan>> {
    let mut vector = Some(vector);
    let rebound = plan.clone().transform_up(|node| {
        let node: Arc<dyn ExecutionPlan> = match node.downcast_ref::<VectorSearchExec>() {
            Some(search) => {
                let vector = vector.take().ok_or_else(|| {
                    datafusion::common::DataFusionError::Internal(
                        "a cached search plan holds more than one search".into(),
                    )
                })?;
                Arc::new(search.rebound(vector, Some(read_ts)))
            }
            None => node.reset_state()?,
        };
        Ok(Transformed::yes(node))
    })?;
    Ok(rebound.data)
}
