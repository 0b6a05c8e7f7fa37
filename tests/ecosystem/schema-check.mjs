// The committed SDL snapshot, loaded by graphql-js: it must be a valid schema.
// Every type, field and argument must carry a description, so the playground's
// docs explain the domain. The Relay connection types async-graphql generates
// (`UserConnection`, ...) have no type description of their own; their fields do.
import { readFileSync } from 'node:fs';
import { buildSchema, isObjectType, isInputObjectType, isInterfaceType } from 'graphql';

const schema = buildSchema(readFileSync(process.argv[2], 'utf8'));
const missing = [];
for (const type of Object.values(schema.getTypeMap())) {
  if (type.name.startsWith('__')) continue;
  if (!type.description && !type.name.endsWith('Connection')) missing.push(type.name);
  if (isObjectType(type) || isInputObjectType(type) || isInterfaceType(type)) {
    for (const field of Object.values(type.getFields())) {
      if (!field.description) missing.push(`${type.name}.${field.name}`);
      for (const arg of field.args ?? []) {
        if (!arg.description) missing.push(`${type.name}.${field.name}(${arg.name})`);
      }
    }
  }
}
console.log('schema.graphql is valid for graphql-js');
if (missing.length > 0) {
  console.error(`${missing.length} types, fields or arguments without a description:\n${missing.join('\n')}`);
  process.exit(1);
}
console.log('every type, field and argument has a description');
