//! Assembly of a DataFusion session over a Quiver catalog.

use std::sync::Arc;

use datafusion::catalog::{CatalogProviderList, MemoryCatalogProviderList};
use datafusion::execution::memory_pool::MemoryPool;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::execution::SessionStateDefaults;
use datafusion::logical_expr::planner::ExprPlanner;
use datafusion::prelude::{SessionConfig, SessionContext};
use quiver_exec::catalog::{CatalogSource, QuiverCatalog};

use crate::checked_arithmetic::{CheckedArithmeticRule, ConstantArithmeticRule};
use crate::functions::vector_functions;
use crate::json::{json_functions, JsonCastRule, JsonOperatorPlanner, JsonTypePlanner};
use crate::operators::VectorOperatorPlanner;
use crate::vector_cast::VectorCastRule;
use crate::vector_search::{QuiverQueryPlanner, VectorSearchRule};

/// Name of the DataFusion catalog holding Quiver's schemas.
pub const CATALOG_NAME: &str = "quiver";
/// The default schema (the Milvus database `default`).
pub const DEFAULT_SCHEMA: &str = "public";

/// Builds a session context (one per client connection) over `catalog`,
/// with the vector operators and functions and the JSON functions of
/// `datafusion-functions-json` (`json_get*`, `->`, `->>`, ...). Every
/// statement of the session reserves its memory from `memory_pool` (see
/// `quiver_exec::memory`).
pub fn new_session_context(
    catalog: Arc<dyn CatalogSource>,
    memory_pool: Arc<dyn MemoryPool>,
) -> datafusion::error::Result<SessionContext> {
    let config = SessionConfig::new()
        .with_default_catalog_and_schema(CATALOG_NAME, DEFAULT_SCHEMA)
        .with_information_schema(true)
        .with_create_default_catalog_and_schema(false);
    // One optimizer pass: the vector-search rule runs last in it, so no
    // later pass re-simplifies the filters inside a VectorSearch leaf,
    // whose expressions DataFusion would resolve against an empty schema
    // ("No field named ..." for `a % 3 = 0`, `a IS NOT NULL`, ...).
    let mut config = config;
    config.options_mut().optimizer.max_passes = 1;
    // `timestamptz` values (casts, `now()`) carry a zone, as PostgreSQL's
    // do; the session's `TimeZone` replaces it (`SET TIME ZONE`).
    config.options_mut().execution.time_zone = Some("UTC".to_string());
    // Row estimates (a search's k) decide whether more partitions pay off:
    // a search's few rows are not spread over the cores.
    config
        .options_mut()
        .execution
        .use_row_number_estimates_to_optimize_partitioning = true;
    let catalogs = Arc::new(MemoryCatalogProviderList::new());
    catalogs.register_catalog(
        CATALOG_NAME.to_string(),
        Arc::new(QuiverCatalog::new(catalog)),
    );
    let mut expr_planners: Vec<Arc<dyn ExprPlanner>> = vec![
        Arc::new(VectorOperatorPlanner),
        Arc::new(JsonOperatorPlanner),
    ];
    expr_planners.extend(SessionStateDefaults::default_expr_planners());
    let runtime = RuntimeEnvBuilder::new()
        .with_memory_pool(memory_pool)
        .build_arc()?;
    let mut state = SessionStateBuilder::new()
        .with_config(config)
        .with_runtime_env(runtime)
        .with_default_features()
        .with_catalog_list(catalogs)
        .with_expr_planners(expr_planners)
        .with_query_planner(Arc::new(QuiverQueryPlanner))
        .with_physical_optimizer_rule(Arc::new(CheckedArithmeticRule))
        .with_type_planner(Arc::new(JsonTypePlanner::default()))
        .build();
    datafusion_functions_json::register_all(&mut state)?;
    let ctx = SessionContext::new_with_state(state);
    ctx.add_analyzer_rule(Arc::new(VectorCastRule));
    ctx.add_analyzer_rule(Arc::new(ConstantArithmeticRule));
    ctx.add_analyzer_rule(Arc::new(JsonCastRule));
    ctx.add_analyzer_rule(Arc::new(crate::lateral_search::LateralSearchRule));
    ctx.add_optimizer_rule(Arc::new(crate::join_search::JoinSearchRule));
    ctx.add_optimizer_rule(Arc::new(VectorSearchRule));
    for udf in vector_functions().into_iter().chain(json_functions()) {
        ctx.register_udf(udf);
    }
    ctx.register_udaf(crate::vector_avg::vector_avg());
    ctx.register_udaf(crate::subquery_value::subquery_value());
    ctx.register_udf(crate::subquery_value::subquery_check());
    Ok(ctx)
}
