/**
 * distilGate: run one DistilGate gate from a Jenkins pipeline with curl alone.
 *
 * Usage, after loading this repository's ci/jenkins folder as a shared library:
 *
 *   distilGate(
 *       kind: 'data',                       // 'model', 'data' or 'metrics'
 *       server: 'http://distilgate:8000',   // base URL of the service
 *       files: [original: 'all.csv', subset: 'small.csv'],
 *       fields: [scenario_columns: 'ink,width', label_column: 'label'],
 *       project: 'digits',                  // default: the job name
 *       policy: '{"min_coverage": 0.9}',    // optional threshold overrides
 *       credentialsId: 'distilgate-token',  // optional secret-text credential
 *       name: 'data-gate',                  // report file names; default: kind
 *       reportsDir: 'reports',              // default: reports
 *       wait: 600,                          // seconds to wait for the verdict
 *   )
 *
 * For kind 'metrics', pass the JSON body as `body` instead of files and fields.
 *
 * The step prints the Markdown report in the console, publishes the JUnit XML
 * with the junit step, archives the report, and fails the build unless the
 * verdict is "passed" (or an accepted waiver). It returns the gate's status.
 */
def call(Map args) {
    String kind = args.kind ?: error('distilGate: kind is required (model, data or metrics)')
    String server = (args.server ?: env.DISTILGATE_URL ?: error('distilGate: server is required')).replaceAll('/+$', '')
    String name = args.name ?: kind
    String reports = args.reportsDir ?: 'reports'
    int wait = (args.wait ?: 600) as int
    Map fields = [project: args.project ?: env.JOB_BASE_NAME,
                  branch: env.BRANCH_NAME ?: '',
                  commit: env.GIT_COMMIT ?: ''] + (args.fields ?: [:])
    if (args.policy) {
        fields.policy = args.policy
    }

    List<String> curl = ['curl', '--silent', '--show-error', '--fail-with-body',
                         '--dump-header', "${reports}/${name}.headers",
                         '--output', "${reports}/${name}.json"]
    if (kind == 'metrics') {
        writeFile file: "${reports}/${name}.request.json", text: args.body ?: error('distilGate: body is required for metrics')
        curl += ['-H', 'content-type: application/json',
                 '--data-binary', "@${reports}/${name}.request.json"]
    } else {
        (args.files ?: [:]).each { field, path -> curl += ['-F', "${field}=@${path}"] }
        fields.each { field, value -> if (value) { curl += ['-F', "${field}=${value}"] } }
    }
    curl += ["${server}/api/v1/gates/${kind}?fail_on_verdict=true&wait=${wait}"]

    int code = 0
    Closure run = {
        sh "mkdir -p '${reports}'"
        code = sh(script: shellJoin(curl, args.credentialsId != null), returnStatus: true)
        String location = readFile("${reports}/${name}.headers").readLines()
            .find { it.toLowerCase().startsWith('location:') }?.substring(9)?.trim()
        if (location) {
            String auth = args.credentialsId ? '-H "Authorization: Bearer $DISTILGATE_TOKEN" ' : ''
            sh "curl --silent --show-error --fail ${auth}'${server}${location}/report.md' -o '${reports}/${name}.md' || true"
            sh "curl --silent --show-error --fail ${auth}'${server}${location}/junit.xml' -o '${reports}/${name}.xml' || true"
            sh "cat '${reports}/${name}.md' || true"
        } else {
            sh "cat '${reports}/${name}.json' || true"
        }
    }
    if (args.credentialsId) {
        withCredentials([string(credentialsId: args.credentialsId, variable: 'DISTILGATE_TOKEN')]) { run() }
    } else {
        run()
    }
    junit allowEmptyResults: true, testResults: "${reports}/${name}.xml"
    archiveArtifacts allowEmptyArchive: true, artifacts: "${reports}/${name}.md"
    String result = "${reports}/${name}.json"
    // Without an answer (curl could not connect) there is no body to read.
    String status = fileExists(result) ? (readJSON(file: result)?.status ?: 'error') : 'error'
    if (code != 0) {
        error("DistilGate ${kind} gate ${status} (curl exit ${code}); see the report above")
    }
    return status
}

/** Quote every argument for sh; the token stays in the environment, never in the script. */
private String shellJoin(List<String> words, boolean withToken) {
    List<String> quoted = words.collect { "'" + it.replace("'", "'\\''") + "'" }
    if (withToken) {
        quoted.add(1, '-H "Authorization: Bearer $DISTILGATE_TOKEN"')
    }
    return quoted.join(' ')
}
